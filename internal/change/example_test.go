package change_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/fim"
)

// The worked example of docs/change-control.md: carol edits
// /etc/app/app.conf under CHG-1 in its window, and again after it.
func ExampleClassifier_Classify() {
	data, err := os.ReadFile("testdata/change-control.yaml")
	if err != nil {
		panic(err)
	}
	cfg, err := change.ParseConfig(data)
	if err != nil {
		panic(err)
	}
	c, err := cfg.Compile()
	if err != nil {
		panic(err)
	}
	f, err := os.Open("testdata/requests.json")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	requests, err := change.ImportRequests(f)
	if err != nil {
		panic(err)
	}

	sum := func(s string) fim.Digest {
		h := sha256.Sum256([]byte(s))
		return fim.Digest{Alg: fim.SHA256, Sum: h[:]}
	}
	old := &fim.Entry{Path: "/etc/app/app.conf", Type: fim.TypeFile, Mode: 0o644, Content: sum("workers = 4\n")}
	edited := *old
	edited.Content = sum("workers = 8\n")
	auid := uint32(1003)
	in := change.Input{
		Change:   fim.Change{Path: old.Path, Kind: fim.Modified, Changed: fim.AttrSet(fim.AttrContent), Old: old, New: &edited},
		Host:     "app-1",
		At:       time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		Actor:    &change.Actor{UID: 0, AUID: &auid, User: "root", LoginUser: "carol", Exe: "/usr/bin/vim.basic", Comm: "vim"},
		Requests: requests,
	}
	for _, at := range []int{10, 13} {
		in.At = time.Date(2026, 11, 23, at, 0, 0, 0, time.UTC)
		in.Now = in.At
		out, _ := json.MarshalIndent(c.Classify(in), "", "  ")
		fmt.Println(string(out))
	}
	// Output:
	// {
	//   "authorized": true,
	//   "by": {
	//     "kind": "change_request",
	//     "id": "CHG-1",
	//     "detail": "approved by bob at 2026-11-23T08:30:00Z"
	//   },
	//   "explanation": "Authorized by change request CHG-1. Made by carol (login uid 1003, /usr/bin/vim.basic). CHG-1 covers /etc/app/app.conf on app-1, the change was made in its window by implementer carol, approved by bob at 2026-11-23T08:30:00Z.",
	//   "person": "carol",
	//   "request": "CHG-1"
	// }
	// {
	//   "authorized": false,
	//   "reasons": [
	//     "outside_window"
	//   ],
	//   "explanation": "Unauthorized. Made by carol (login uid 1003, /usr/bin/vim.basic). The change to /etc/app/app.conf was made at 2026-11-23T13:00:00Z, outside the window of CHG-1 (2026-11-23T09:00:00Z to 2026-11-23T12:00:00Z).",
	//   "person": "carol",
	//   "request": "CHG-1"
	// }
}
