package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/change"
)

// TestWatchAuthorizesByWhoData walks the part of the change-control story
// that needs who-data: carol, an implementer of an approved request, edits
// a file while `vigil watch` runs; the change is authorized from her login
// uid and taken into the baseline at once. dave, who is not an
// implementer, is not authorized.
func TestWatchAuthorizesByWhoData(t *testing.T) {
	needRoot(t)
	ok := func(code int, stdout, stderr string) string {
		t.Helper()
		return expectOK(t, code, stdout, stderr)
	}
	T := t.TempDir()
	tree := filepath.Join(T, "tree")
	conf := tree + "/etc/app/app.conf"
	other := tree + "/etc/app/other.conf"
	writeFile(t, conf, "workers = 4\n", 0o644)
	writeFile(t, other, "x = 1\n", 0o644)
	db := filepath.Join(T, "state", "baseline.vgl")
	polFile := filepath.Join(T, "policy.yaml")
	vkey := strings.TrimSpace(ok(ccRun(t, "manifest", "keygen", "deploy-app", "--out", filepath.Join(T, "deploy.key"))))
	writeFile(t, polFile, ccPolicy(tree, vkey), 0o644)
	ok(ccRun(t, "baseline", "--db", db, "--policy", polFile))
	ok(person(t, uidAlice, "change", "open", "CHG-1", "--title", "workers", "--path", tree+"/etc/app/app.conf",
		"--implementer", "carol", "--start", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "--for", "2h", "--db", db))
	ok(person(t, uidBob, "change", "approve", "CHG-1", "--db", db))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, vigilBinary(t), "watch", "--json", "--db", db)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type line struct {
		Path    string          `json:"path"`
		Type    string          `json:"type"`
		Verdict *change.Verdict `json:"verdict"`
		Who     *struct {
			Attribution string `json:"attribution"`
			Reason      string `json:"reason"`
		} `json:"who"`
		Health *struct {
			Kind string `json:"kind"`
		} `json:"health"`
	}
	lines := make(chan line, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l line
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
		close(lines)
	}()
	wait := func(what string, ok func(line) bool) line {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, open := <-lines:
				if !open {
					t.Fatalf("watch ended before %s: %s", what, errOut.String())
				}
				if ok(l) {
					return l
				}
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	wait("watcher-started", func(l line) bool { return l.Health != nil && l.Health.Kind == "watcher-started" })

	edit := func(uid int, path, content string) {
		t.Helper()
		c := exec.Command("sh", "-c", fmt.Sprintf("echo %d > /proc/self/loginuid && printf '%s' > %s", uid, content, path))
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("edit as %d: %v %s", uid, err, out)
		}
	}
	// Who-data can lag the watcher's start by a moment: probe with a
	// scratch file until a change comes back attributed by audit.
	probe := tree + "/probe"
	for i := 0; ; i++ {
		if i == 40 {
			t.Skip("who-data never became available (audit in use by another process?)")
		}
		edit(uidBob, probe, fmt.Sprint(i))
		select {
		case l := <-lines:
			if l.Path == probe && l.Who != nil && l.Who.Attribution == "audit" {
				goto ready
			}
		case <-time.After(500 * time.Millisecond):
		}
	}
ready:
	edit(uidCarol, conf, "workers = 8\n")
	l := wait("carol's edit", func(l line) bool { return l.Path == conf && l.Verdict != nil })
	if l.Who != nil && l.Who.Attribution == "unavailable" {
		t.Skipf("who-data unavailable on this machine (%s): verdict %+v", l.Who.Reason, l.Verdict)
	}
	if !l.Verdict.Authorized || l.Verdict.By == nil || l.Verdict.By.ID != "CHG-1" || l.Verdict.Person != "carol" {
		t.Fatalf("carol's edit under watch: %+v", l.Verdict)
	}
	edit(uidDave, other, "x = 2\n")
	l = wait("dave's edit", func(l line) bool { return l.Path == other && l.Verdict != nil })
	if l.Verdict.Authorized || !strings.Contains(fmt.Sprint(l.Verdict.Reasons), "no_change_request") && !strings.Contains(fmt.Sprint(l.Verdict.Reasons), "not_an_implementer") {
		t.Fatalf("dave's edit under watch: %+v", l.Verdict)
	}
	cancel()
	cmd.Wait()

	// carol's change moved the baseline; dave's is still a difference.
	code, rep := checkJSON(t, db, "--store", filepath.Join(T, "scratch.sqlite"), "--no-evidence")
	if code != ExitChanges {
		t.Fatalf("check after watch: exit %d", code)
	}
	got := changesByPath(t, rep)
	if _, ok := got[conf]; ok {
		t.Errorf("authorized change of %s not taken into the baseline: %v", conf, got)
	}
	if _, ok := got[other]; !ok {
		t.Errorf("unauthorized change of %s missing from check: %v", other, got)
	}
}
