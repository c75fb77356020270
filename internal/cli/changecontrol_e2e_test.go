package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/control"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/record"
)

// The vigil binary for tests that run it as other people (a child
// process with its own login uid). Built once, on first use, and removed
// by TestMain.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func vigilBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "vigil-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "vigil")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/vigilfim/vigil/cmd/vigil").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// person runs vigil as the person with the given login uid: the child
// sets its own /proc/self/loginuid (root may) before exec, as pam_loginuid
// does at login, so the identity comes from the process, never a flag.
func person(t *testing.T, uid int, args ...string) (int, string, string) {
	t.Helper()
	bin := vigilBinary(t)
	cmd := exec.Command("sh", append([]string{"-c", fmt.Sprintf("echo %d > /proc/self/loginuid && exec \"$0\" \"$@\"", uid), bin}, args...)...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run vigil %v: %v", args, err)
	}
	return code, o.String(), e.String()
}

const (
	uidAlice = 1001
	uidBob   = 1002
	uidCarol = 1003
	uidDave  = 1004
	uidErin  = 1005
	uidNoOne = 4242
)

func ccPolicy(tree, pipelineKey string, extraRules ...string) string {
	rules := "  - path: " + tree + "\n"
	for _, r := range extraRules {
		rules += "  - path: " + r + "\n"
	}
	return fmt.Sprintf(`version: 1
name: change-control e2e
rules:
%[3]speople:
  - {id: alice, uids: [%[4]d], roles: [app-admins]}
  - {id: bob, uids: [%[5]d], roles: [change-approvers]}
  - {id: carol, uids: [%[6]d], roles: [app-admins]}
  - {id: dave, uids: [%[7]d], roles: [app-admins]}
  - {id: erin, uids: [%[8]d], roles: [developer]}
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
`, tree, pipelineKey, rules, uidAlice, uidBob, uidCarol, uidDave, uidErin)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: simulates people by setting /proc/self/loginuid in child processes")
	}
	if err := exec.Command("sh", "-c", "echo 4242 > /proc/self/loginuid").Run(); err != nil {
		t.Skip("needs CAP_AUDIT_CONTROL to set /proc/self/loginuid in a child")
	}
}

// verdicts runs check --json and returns path -> verdict.
func verdicts(t *testing.T, db, store string) map[string]*change.Verdict {
	t.Helper()
	_, rep := checkJSON(t, db, "--store", store)
	out := map[string]*change.Verdict{}
	for _, c := range rep.Changes {
		if c.Verdict == nil {
			t.Fatalf("change %s has no verdict", c.Path)
		}
		out[c.Path] = c.Verdict
	}
	return out
}

func expectFail(t *testing.T, code int, stderr, want string) {
	t.Helper()
	if code == 0 || !strings.Contains(stderr, want) {
		t.Fatalf("want failure containing %q, got exit %d: %s", want, code, stderr)
	}
}

func expectOK(t *testing.T, code int, stdout, stderr string) string {
	t.Helper()
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	return stdout
}

// TestChangeControlStory walks the worked example of
// docs/change-control.md through the vigil binary, with people simulated
// by login uids. Carol's edits need who-data, which check does not have:
// they go through the controller API with who-data, as watch does.
func TestChangeControlStory(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	ok := func(code int, stdout, stderr string) string {
		t.Helper()
		return expectOK(t, code, stdout, stderr)
	}
	T := t.TempDir()
	tree := filepath.Join(T, "tree")
	conf := tree + "/etc/app/app.conf"
	binApp, page := tree+"/srv/app/bin/app", tree+"/srv/app/index.html"
	writeFile(t, conf, "workers = 4\n", 0o644)
	writeFile(t, binApp, "app v1\n", 0o755)
	writeFile(t, page, "<html>v1</html>\n", 0o644)
	db := filepath.Join(T, "state", "baseline.vgl")
	store := filepath.Join(T, "state", "vigil.sqlite")

	// The pipeline key: keygen prints the verifier key for the policy.
	vkey := strings.TrimSpace(ok(ccRun(t, "manifest", "keygen", "deploy-app", "--out", filepath.Join(T, "deploy.key"))))
	polFile := filepath.Join(T, "policy.yaml")
	writeFile(t, polFile, ccPolicy(tree, vkey), 0o644)
	ok(ccRun(t, "baseline", "--db", db, "--policy", polFile))
	cc := []string{"--db", db} // store and policy: beside and in the baseline

	// alice requests CHG-1 for the app's configuration, carol implements.
	out := ok(person(t, uidAlice, append([]string{"change", "open", "CHG-1", "--title", "Raise app worker count",
		"--path", tree + "/etc/app/**", "--implementer", "carol", "--start", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "--for", "2h"}, cc...)...))
	if !strings.Contains(out, "opened CHG-1 by alice") {
		t.Fatalf("open: %s", out)
	}
	code, _, errOut := person(t, uidAlice, append([]string{"change", "approve", "CHG-1"}, cc...)...)
	expectFail(t, code, errOut, "alice cannot approve CHG-1: alice requested it")
	code, _, errOut = person(t, uidCarol, append([]string{"change", "approve", "CHG-1"}, cc...)...)
	expectFail(t, code, errOut, "carol cannot approve CHG-1: carol is one of its implementers")
	code, _, errOut = person(t, uidNoOne, append([]string{"change", "approve", "CHG-1"}, cc...)...)
	expectFail(t, code, errOut, "login uid 4242 is not in the policy's people directory")
	out = ok(person(t, uidBob, append([]string{"change", "approve", "CHG-1", "--note", "CAB 47"}, cc...)...))
	if !strings.Contains(out, "CHG-1 is approved") {
		t.Fatalf("approve: %s", out)
	}

	// carol edits app.conf in the window. check alone can't know it was
	// carol: unknown_actor, and a review item.
	writeFile(t, conf, "workers = 8\n", 0o644)
	v := verdicts(t, db, store)
	if got := v[conf]; got == nil || got.Authorized || got.Reasons[0] != change.UnknownActor || got.Request != "CHG-1" {
		t.Fatalf("check verdict for carol's edit without who-data: %+v", got)
	}
	// Found again by the next check, it is still one change with one
	// review item (the review list below counts them).
	verdicts(t, db, store)
	// With who-data (what watch supplies), through the controller API. A
	// scratch store (no requests, no manifests) lets check show what the
	// baseline holds without settling anything.
	scratch := filepath.Join(T, "scratch.sqlite")
	_, rep := checkJSON(t, db, "--store", scratch)
	fc := findChange(t, rep, conf)
	pol, err := policy.Load(polFile)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := control.Open(ctx, store, pol, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	carol := &change.Actor{UID: 0, AUID: ptr(uint32(uidCarol)), User: "root", Exe: "/usr/bin/vim.basic"}
	dave := &change.Actor{UID: 0, AUID: ptr(uint32(uidDave)), User: "root", Exe: "/usr/bin/vim.basic"}
	now := time.Now()
	settle := func(at time.Time, who *change.Actor) (change.Verdict, string) {
		t.Helper()
		v, err := ctl.Classify(ctx, "app-1", fc, at, who)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(record.New(fc, nil))
		evs, err := ctl.Settle(ctx, []control.Finding{{Host: "app-1", Source: control.SourceWatch, Change: fc, Record: raw,
			At: at, Actor: who, Verdict: v}}, baselineAcceptor{sp: statePaths{db: db, key: filepath.Join(filepath.Dir(db), "vigil.key")}, stderr: os.Stderr})
		if err != nil {
			t.Fatal(err)
		}
		return v, evs[0].Review
	}
	// Outside the window and by a non-implementer: unauthorized, reviewed.
	if v, _ := settle(now.Add(3*time.Hour), carol); v.Authorized || fmt.Sprint(v.Reasons) != "[outside_window]" {
		t.Fatalf("carol after the window: %+v", v)
	}
	if v, _ := settle(now, dave); v.Authorized || fmt.Sprint(v.Reasons) != "[not_an_implementer]" {
		t.Fatalf("dave: %+v", v)
	}
	// In the window: authorized by CHG-1, accepted into the baseline.
	if v, _ := settle(now, carol); !v.Authorized || v.By.ID != "CHG-1" || v.Person != "carol" {
		t.Fatalf("carol in the window: %+v", v)
	}
	if v := verdicts(t, db, scratch); v[conf] != nil {
		t.Fatalf("the baseline did not take carol's authorized change: %+v", v[conf])
	}
	code, showOut, _ := run(t, "show", "--db", db, "--json", conf)
	if code != 0 || !strings.Contains(showOut, "authorized by change_request CHG-1") {
		t.Fatalf("show does not name the authority of the acceptance: %s", showOut)
	}

	// The review queue: carol's late change may not be accepted by carol.
	out = ok(person(t, uidBob, append([]string{"review", "list", "--json"}, cc...)...))
	var items []change.ReviewItem
	if err := json.Unmarshal([]byte(out), &items); err != nil || len(items) != 3 {
		t.Fatalf("review list: %v\n%s", err, out)
	}
	late := ""
	for _, it := range items {
		if it.Actor == "carol" {
			late = it.ID
		}
	}
	code, _, errOut = person(t, uidCarol, append([]string{"review", "accept", late, "--note", "it was fine"}, cc...)...)
	expectFail(t, code, errOut, "carol cannot review "+late+": carol made the change")
	code, _, errOut = person(t, uidBob, append([]string{"review", "accept", late}, cc...)...)
	expectFail(t, code, errOut, "needs a note")
	out = ok(person(t, uidBob, append([]string{"review", "accept", late, "--note", "agreed with carol afterwards"}, cc...)...))
	if !strings.Contains(out, "accepted by bob") {
		t.Fatalf("review accept: %s", out)
	}

	// A deploy: the manifest lists the new bin/app and an index.html whose
	// deployed bytes differ by one from what it lists.
	build := filepath.Join(T, "build")
	writeFile(t, build+"/app", "app v2\n", 0o755)
	writeFile(t, build+"/index.html", "<html>v2</html>\n", 0o644)
	signed := ok(ccRun(t, "manifest", "sign", "--key", filepath.Join(T, "deploy.key"), "--run", "412", "--commit", "9fceb02",
		"--author", "erin", "--reviewer", "bob", "--host", "*", binApp+"="+build+"/app", page+"="+build+"/index.html"))
	mfile := filepath.Join(T, "412.manifest")
	writeFile(t, mfile, signed, 0o644)
	ok(ccRun(t, append([]string{"manifest", "verify", mfile}, cc...)...))
	out = ok(ccRun(t, append([]string{"manifest", "submit", mfile}, cc...)...))
	if !strings.Contains(out, "submitted deploy-app/412") {
		t.Fatalf("submit: %s", out)
	}
	// A manifest signed by a key no pipeline registered is refused.
	ok(ccRun(t, "manifest", "keygen", "deploy-app", "--out", filepath.Join(T, "rogue.key")))
	rogue := ok(ccRun(t, "manifest", "sign", "--key", filepath.Join(T, "rogue.key"), "--run", "666", "--commit", "bad",
		"--author", "erin", "--reviewer", "bob", "--host", "*", binApp+"="+build+"/app"))
	rfile := filepath.Join(T, "666.manifest")
	writeFile(t, rfile, rogue, 0o644)
	code, _, errOut = ccRun(t, append([]string{"manifest", "submit", rfile}, cc...)...)
	expectFail(t, code, errOut, "reject manifest")
	code, _, errOut = ccRun(t, append([]string{"manifest", "verify", rfile}, cc...)...)
	expectFail(t, code, errOut, "deploy-app")

	writeFile(t, binApp, "app v2\n", 0o755)
	writeFile(t, page, "<html>v2</html>!\n", 0o644)
	v = verdicts(t, db, store)
	if got := v[binApp]; got == nil || !got.Authorized || got.By.Kind != change.ByManifest || got.By.ID != "deploy-app/412" {
		t.Fatalf("deployed bin/app: %+v", got)
	}
	if got := v[page]; got == nil || got.Authorized || fmt.Sprint(got.Reasons) != "[manifest_mismatch]" {
		t.Fatalf("index.html one byte off: %+v", got)
	}
	// bin/app is in the baseline now, index.html waits for review.
	v = verdicts(t, db, scratch)
	if v[binApp] != nil || v[page] == nil {
		t.Fatalf("after settling: %+v", v)
	}

	// index.html waits for review; bob rejects it (to be rolled back).
	out = ok(person(t, uidBob, append([]string{"review", "list", "--json"}, cc...)...))
	items = nil
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Path == page {
			out = ok(person(t, uidBob, append([]string{"review", "reject", it.ID, "--note", "roll back, wrong build"}, cc...)...))
			if !strings.Contains(out, "rejected by bob") {
				t.Fatalf("review reject: %s", out)
			}
		}
	}

	// Requests mirrored from the ticketing system; a request naming
	// someone the directory lacks is refused whole.
	imp := filepath.Join(T, "requests.json")
	writeFile(t, imp, `[{"id":"OPS-9","title":"rotate logs","requester":"alice","implementers":["dave"],
  "scope":{"paths":["`+tree+`/etc/app/logrotate.d/**"]},"window":{"start":"2026-12-01T09:00:00Z","end":"2026-12-01T10:00:00Z"},
  "state":"approved","approvals":[{"by":"bob","at":"2026-11-30T09:00:00Z"}],"opened":"2026-11-29T09:00:00Z"}]`, 0o644)
	out = ok(person(t, uidAlice, append([]string{"change", "import", imp}, cc...)...))
	if !strings.Contains(out, "imported 1 change request") {
		t.Fatalf("import: %s", out)
	}
	bad := filepath.Join(T, "bad.json")
	writeFile(t, bad, `[{"id":"OPS-10","title":"x","requester":"mallory","implementers":["dave"],"scope":{"paths":["/x"]},
  "window":{"start":"2026-12-01T09:00:00Z","end":"2026-12-01T10:00:00Z"},"state":"open","opened":"2026-11-29T09:00:00Z"}]`, 0o644)
	code, _, errOut = person(t, uidAlice, append([]string{"change", "import", bad}, cc...)...)
	expectFail(t, code, errOut, "mallory")
	code, _, errOut = person(t, uidDave, append([]string{"change", "reject", "OPS-9"}, cc...)...)
	expectFail(t, code, errOut, "dave cannot reject OPS-9")
	out = ok(person(t, uidCarol, append([]string{"change", "close", "CHG-1"}, cc...)...))
	if !strings.Contains(out, "CHG-1 is closed") {
		t.Fatalf("close: %s", out)
	}
	out = ok(ccRun(t, append([]string{"change", "list", "--json"}, cc...)...))
	var reqs []change.Request
	if err := json.Unmarshal([]byte(out), &reqs); err != nil || len(reqs) != 2 || reqs[0].ID != "CHG-1" || reqs[0].State != change.StateClosed || reqs[1].ID != "OPS-9" {
		t.Fatalf("change list: %v\n%s", err, out)
	}

	// The report: the population with who, verdict and authority.
	day := now.UTC().Format(time.DateOnly)
	next := now.UTC().Add(48 * time.Hour).Format(time.DateOnly)
	out = ok(person(t, uidBob, append([]string{"report", "changes", "--from", day, "--to", next, "--format", "json"}, cc...)...))
	var report control.Report
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("report json: %v\n%s", err, out)
	}
	if report.Totals.Total < 5 || len(report.Exceptions) < 3 {
		t.Fatalf("report: %+v", report.Totals)
	}
	out = ok(ccRun(t, append([]string{"report", "changes", "--from", day, "--to", next, "--format", "csv"}, cc...)...))
	if !strings.HasPrefix(out, "id,time,host,path") || !strings.Contains(out, "deploy-app/412") {
		t.Fatalf("csv report:\n%s", out)
	}
	out = ok(ccRun(t, append([]string{"report", "changes", "--from", day, "--to", next}, cc...)...))
	for _, want := range []string{"authorized by change_request CHG-1", "not_an_implementer", "accepted by bob", "roll back, wrong build"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

// ccRun runs the binary as root with no login uid of its own changed.
func ccRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	code, o, e := run(t, args...)
	return code, o, e
}

func ptr[T any](v T) *T { return &v }

func findChange(t *testing.T, rep *record.Report, path string) *fim.Change {
	t.Helper()
	for _, c := range rep.Changes {
		if c.Path == path {
			fc, err := c.ChangeJSON.Change()
			if err != nil {
				t.Fatal(err)
			}
			return fc
		}
	}
	t.Fatalf("no change of %s in the check", path)
	return nil
}
