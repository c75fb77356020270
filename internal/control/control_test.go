package control_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/change/manifest"
	"github.com/vigilfim/vigil/internal/change/pkgdb"
	"github.com/vigilfim/vigil/internal/control"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

var t10 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// testPolicy is the worked example's directory over a tree under root.
func testPolicy(t testing.TB, root, pipelineKey string) *policy.Policy {
	t.Helper()
	src := fmt.Sprintf(`version: 1
name: change-control test
rules:
  - path: %[1]s
people:
  - {id: alice, uids: [1001], roles: [app-admins]}
  - {id: bob, uids: [1002], roles: [change-approvers]}
  - {id: carol, uids: [1003], roles: [app-admins]}
  - {id: dave, uids: [1004], roles: [app-admins]}
  - {id: erin, uids: [1005], roles: [developer]}
roles:
  - name: app-admins
    implement:
      - paths: ["%[1]s/etc/app/**"]
  - name: change-approvers
    approve: true
  - name: developer
pipelines:
  - id: deploy-app
    key: %[2]s
    hosts: ["*"]
    paths: ["%[1]s/srv/app/**"]
`, root, pipelineKey)
	pol, err := policy.Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// acceptCalls records what Settle asks the baseline to take.
type acceptCalls struct {
	paths []string
	who   []*change.Actor
	notes []string
}

func (a *acceptCalls) Accept(_ context.Context, paths []string, who *change.Actor, note string) error {
	a.paths = append(a.paths, paths...)
	a.who = append(a.who, who)
	a.notes = append(a.notes, note)
	return nil
}

func digest(content string) fim.Digest {
	s := sha256.Sum256([]byte(content))
	return fim.Digest{Alg: fim.SHA256, Sum: s[:]}
}

func modified(path, content string) *fim.Change {
	old := &fim.Entry{Path: path, Type: fim.TypeFile, Mode: 0o644, Content: digest("old")}
	nw := *old
	nw.Content = digest(content)
	return &fim.Change{Path: path, Kind: fim.Modified, Old: old, New: &nw, Changed: fim.AttrSet(fim.AttrContent)}
}

func sudo(auid uint32, login string) *change.Actor {
	return &change.Actor{UID: 0, AUID: &auid, User: "root", LoginUser: login, Exe: "/usr/bin/vim.basic", Comm: "vim"}
}

type fixture struct {
	ctl  *control.Controller
	root string
	sign note.Signer
	evil note.Signer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureAt(t, func() time.Time { return t10.Add(time.Hour) })
}

func newFixtureAt(t testing.TB, now func() time.Time) *fixture {
	t.Helper()
	ctx := context.Background()
	skey, vkey, err := note.GenerateKey(rand.Reader, "deploy-app")
	if err != nil {
		t.Fatal(err)
	}
	sign, _ := note.NewSigner(skey)
	ekey, _, _ := note.GenerateKey(rand.Reader, "deploy-app")
	evil, _ := note.NewSigner(ekey)
	dir := t.TempDir()
	pol := testPolicy(t, dir, vkey)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := control.Config(pol)
	if err != nil {
		t.Fatal(err)
	}
	// An empty package database: this test is about requests and
	// manifests (the dpkg case runs in the CLI test).
	ctl := control.New(st, cl, pol, control.Options{Now: now, Packages: noPackages{}})
	t.Cleanup(func() { ctl.Close() })
	return &fixture{ctl: ctl, root: dir, sign: sign, evil: evil}
}

type noPackages struct{}

func (noPackages) Lookup(string) []pkgdb.File { return nil }

// TestStory walks the worked example through the controller with who-data,
// as watch will: requests from the store, verdicts settled into the
// baseline or the review queue, and the report over all of it.
func TestStory(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	cl := f.ctl.Classifier()
	conf := f.root + "/etc/app/app.conf"

	// alice requests CHG-1, bob approves (alice herself may not).
	r, err := change.Open(change.Request{ID: "CHG-1", Title: "Raise app worker count", Requester: "alice",
		Implementers: []string{"carol"}, Scope: change.Scope{Paths: []string{f.root + "/etc/app/**"}},
		Window: change.Window{Start: t10.Add(-time.Hour), End: t10.Add(2 * time.Hour)}}, t10.Add(-3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.Store().CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	var self *change.SelfApprovalError
	if _, err := cl.Approve(r, "alice", t10.Add(-2*time.Hour), ""); !errors.As(err, &self) {
		t.Fatalf("alice approving her own request: %v", err)
	}
	ok, err := cl.Approve(r, "bob", t10.Add(-2*time.Hour), "CAB")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.Store().UpdateRequest(ctx, r, ok); err != nil {
		t.Fatal(err)
	}

	// A manifest for two files; a second signed by a key no pipeline has.
	bin, page := f.root+"/srv/app/bin/app", f.root+"/srv/app/index.html"
	m := &manifest.Manifest{Pipeline: "deploy-app", Run: "412", Commit: "9fceb02", Author: "erin", Reviewers: []string{"bob"},
		Hosts: []string{"*"}, Created: t10.Add(-time.Hour),
		Files: []manifest.File{{Path: bin, SHA256: sha256.Sum256([]byte("app v2"))}, {Path: page, SHA256: sha256.Sum256([]byte("<html>"))}}}
	signed, err := manifest.Sign(m, f.sign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctl.SubmitManifest(ctx, signed); err != nil {
		t.Fatal(err)
	}
	m2 := *m
	m2.Run = "413"
	m2.Files = []manifest.File{{Path: f.root + "/srv/app/evil", SHA256: sha256.Sum256([]byte("x"))}}
	forged, _ := manifest.Sign(&m2, f.evil)
	var us *manifest.UnknownSignerError
	if _, err := f.ctl.SubmitManifest(ctx, forged); !errors.As(err, &us) {
		t.Fatalf("manifest signed by an unknown key: got %v", err)
	}

	cases := []struct {
		name    string
		change  *fim.Change
		at      time.Time
		who     *change.Actor
		by      string
		reasons []change.Reason
	}{
		{"carol in the window", modified(conf, "workers = 8"), t10, sudo(1003, "carol"), "CHG-1", nil},
		{"carol after the window", modified(conf, "workers = 9"), t10.Add(3 * time.Hour), sudo(1003, "carol"), "", []change.Reason{change.OutsideWindow}},
		{"dave, not an implementer", modified(conf, "workers = 7"), t10, sudo(1004, "dave"), "", []change.Reason{change.NotAnImplementer}},
		{"a scan: nobody known", modified(conf, "workers = 6"), t10, nil, "", []change.Reason{change.UnknownActor}},
		{"deploy as listed", modified(bin, "app v2"), t10, nil, "deploy-app/412", nil},
		{"deploy, one byte off", modified(page, "<html "), t10, nil, "", []change.Reason{change.ManifestMismatch}},
	}
	var fs []control.Finding
	for _, tc := range cases {
		v, err := f.ctl.Classify(ctx, "app-1", tc.change, tc.at, tc.who)
		if err != nil {
			t.Fatal(err)
		}
		if tc.by != "" && (!v.Authorized || v.By == nil || v.By.ID != tc.by) {
			t.Errorf("%s: want authorized by %s, got %+v", tc.name, tc.by, v)
		}
		if tc.by == "" && (v.Authorized || fmt.Sprint(v.Reasons) != fmt.Sprint(tc.reasons)) {
			t.Errorf("%s: want %v, got %+v", tc.name, tc.reasons, v)
		}
		fs = append(fs, control.Finding{Host: "app-1", Source: control.SourceWatch, Change: tc.change,
			Record: []byte(`{"path":"` + tc.change.Path + `","kind":"modified"}`), At: tc.at, Actor: tc.who, Verdict: v})
	}

	acc := &acceptCalls{}
	evs, err := f.ctl.Settle(ctx, fs, acc)
	if err != nil {
		t.Fatal(err)
	}
	// Two acceptances: carol's under CHG-1 (actor carol), the deploy's.
	if len(acc.notes) != 2 || acc.paths[0] != conf || acc.paths[1] != bin ||
		*acc.who[0].AUID != 1003 || !strings.HasPrefix(acc.notes[0], "authorized by change_request CHG-1") ||
		!strings.HasPrefix(acc.notes[1], "authorized by manifest deploy-app/412") {
		t.Fatalf("acceptances: %+v", acc)
	}
	open, err := f.ctl.Store().Reviews(ctx, change.ReviewOpen)
	if err != nil || len(open) != 4 {
		t.Fatalf("open reviews: %d, %v", len(open), err)
	}
	if evs[1].Review != open[0].ID || open[0].Actor != "carol" {
		t.Fatalf("review of carol's late change: %+v vs %+v", evs[1], open[0])
	}
	// The review queue: carol may not accept her own change; bob may.
	var sr *change.SelfReviewError
	it := open[0]
	if _, err := it.Accept("carol", "fine", t10.Add(4*time.Hour)); !errors.As(err, &sr) {
		t.Fatalf("carol reviewing her own change: %v", err)
	}
	done, err := it.Accept("bob", "agreed with carol afterwards", t10.Add(4*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.Store().UpdateReview(ctx, it, done); err != nil {
		t.Fatal(err)
	}

	rep, err := f.ctl.BuildReport(ctx, t10.Add(-24*time.Hour), t10.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Total != 6 || rep.Totals.Unauthorized != 4 || len(rep.Exceptions) != 4 {
		t.Fatalf("report totals %+v, %d exceptions", rep.Totals, len(rep.Exceptions))
	}
	for _, row := range rep.Exceptions {
		if row.Review == it.ID && !strings.HasPrefix(row.Disposition, "accepted by bob") {
			t.Errorf("disposition of carol's late change: %q", row.Disposition)
		}
		if row.Review != it.ID && row.Disposition != "open" {
			t.Errorf("disposition of %s: %q", row.Review, row.Disposition)
		}
	}
	if len(rep.SoD) != 0 || len(rep.ByTeam) != 2 {
		t.Errorf("SoD %+v, teams %+v", rep.SoD, rep.ByTeam)
	}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != 7 {
		t.Fatalf("csv: %d rows, %v", len(rows), err)
	}
	buf.Reset()
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"authorized by change_request CHG-1", "unauthorized: outside_window", "accepted by bob", "app-admins"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestConfigErrorsNameTheFile(t *testing.T) {
	pol, err := policy.Parse("pol.yaml", []byte("version: 1\nname: x\nrules:\n  - path: /etc\npeople:\n  - id: alice\n    colour: blue\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = control.Config(pol)
	if err == nil || !strings.Contains(err.Error(), "pol.yaml") || !strings.Contains(err.Error(), "line 7") {
		t.Fatalf("got %v, want the file and line 7", err)
	}
	if _, err := control.Config(testPolicyNoCC(t)); !errors.Is(err, control.ErrNoChangeControl) {
		t.Fatalf("policy without sections: %v", err)
	}
}

func TestCompileErrorsHavePositions(t *testing.T) {
	src := "version: 1\nname: x\nrules:\n  - path: /etc\npeople:\n  - id: alice\n    uids: [1001]\n  - id: bob\n    uids: [1001]\nroles:\n  - name: ops\n  - name: ops\n"
	pol, err := policy.Parse("pol.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = control.Config(pol)
	want := []string{
		`pol.yaml:8:5: people[1] "bob": uid 1001 already belongs to "alice"`,
		`pol.yaml:12:5: roles[1] "ops": role defined twice`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

func testPolicyNoCC(t *testing.T) *policy.Policy {
	pol, err := policy.Parse("p.yaml", []byte("version: 1\nname: x\nrules:\n  - path: /etc\n"))
	if err != nil {
		t.Fatal(err)
	}
	return pol
}
