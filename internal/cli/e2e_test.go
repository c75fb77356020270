package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/record"
)

// run executes the vigil command line in-process and returns its status
// and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// checkJSON runs check --json and decodes the report.
func checkJSON(t *testing.T, db string, extra ...string) (int, *record.Report) {
	t.Helper()
	code, out, errOut := run(t, append([]string{"check", "--db", db, "--json"}, extra...)...)
	if code >= ExitError && code != ExitIncomplete {
		t.Fatalf("check exited %d: %s", code, errOut)
	}
	var rep record.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check --json output is not one JSON document: %v\n%s", err, out)
	}
	return code, &rep
}

// changesByPath indexes a report: path -> "type:attr,attr".
func changesByPath(t *testing.T, rep *record.Report) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, c := range rep.Changes {
		fc, err := c.ChangeJSON.Change()
		if err != nil {
			t.Fatalf("decode change %s: %v", c.Path, err)
		}
		m[fc.Path] = c.Type + ":" + strings.Join(c.Changed, ",")
	}
	return m
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func haveTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s (run scripts/setup-test-deps.sh as root)", name)
	}
}

// tick makes sure a following change lands in a later timestamp on file
// systems with coarse timestamps, without sleeping: it sets times
// explicitly where that matters instead.
func setOldTimes(t *testing.T, paths ...string) {
	t.Helper()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range paths {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEndToEndEachKindOfChange(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "state", "baseline.vgl")
	f := func(name string) string { return filepath.Join(tree, name) }

	writeFile(t, f("content"), "one\n", 0o644)
	writeFile(t, f("forged"), "same size A\n", 0o644)
	writeFile(t, f("perm"), "x", 0o644)
	writeFile(t, f("removed"), "bye", 0o644)
	writeFile(t, f("replaced"), "inode", 0o644)
	writeFile(t, f("xattr"), "x", 0o644)
	writeFile(t, f("read-only-access"), "read me", 0o644)
	writeFile(t, f("dir/inner"), "x", 0o644)
	writeFile(t, f("bad\xffname\nwith newline"), "weird", 0o644)
	if err := os.Symlink("content", f("link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(f("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(f("content"), f("hardlink")); err != nil {
		t.Fatal(err)
	}
	setOldTimes(t, f("forged"))

	if code, _, errOut := run(t, "baseline", "--db", db, tree); code != 0 {
		t.Fatalf("baseline exited %d: %s", code, errOut)
	}
	if code, rep := checkJSON(t, db); code != ExitOK || len(rep.Changes) != 0 {
		t.Fatalf("unchanged tree: exit %d, changes %+v", code, rep.Changes)
	}
	if st, err := os.Stat(filepath.Join(root, "state", "vigil.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v, mode %v; want created with 0600", err, st.Mode())
	}

	// Make one change of each kind.
	writeFile(t, f("content"), "two!\n", 0o644)
	writeFile(t, f("forged"), "same size B\n", 0o644)
	setOldTimes(t, f("forged")) // touch -r: mtime forged back, ctime moves
	if err := os.Chmod(f("perm"), 0o4755); err != nil {
		t.Fatal(err)
	}
	os.Remove(f("removed"))
	writeFile(t, f("added"), "new", 0o644)
	// Replaced the way editors do: a new file renamed over the old one.
	writeFile(t, f("replaced.new"), "inode", 0o644)
	if err := os.Rename(f("replaced.new"), f("replaced")); err != nil {
		t.Fatal(err)
	}
	os.Remove(f("link"))
	if err := os.Symlink("elsewhere", f("link")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(f("read-only-access")); err != nil || len(b) == 0 {
		t.Fatal("read failed")
	}
	if err := syscall.Setxattr(f("xattr"), "user.vigil", []byte("v1"), 0); err != nil {
		t.Logf("user xattrs unsupported here: %v", err)
	}
	writeFile(t, f("bad\xffname\nwith newline"), "weirder", 0o644)

	code, rep := checkJSON(t, db)
	if code != ExitChanges {
		t.Fatalf("check exit %d, want %d", code, ExitChanges)
	}
	got := changesByPath(t, rep)
	// The decisive attributes of each change; times may add to them (and
	// an inode number freed by a removal may be reused by the next create).
	want := map[string]string{
		f("content"):                   "modified:size,content",
		f("hardlink"):                  "modified:size,content",
		f("forged"):                    "modified:content",
		f("perm"):                      "modified:mode",
		f("removed"):                   "removed:",
		f("added"):                     "added:",
		f("replaced"):                  "modified:inode",
		f("link"):                      "modified:link_target",
		f("bad\xffname\nwith newline"): "modified:size,content",
		tree:                           "modified:",
	}
	if _, ok := got[f("xattr")]; ok {
		want[f("xattr")] = "modified:xattrs"
	}
	for p, w := range want {
		g := got[p]
		if !sameOrSuperset(g, w) {
			t.Errorf("%q: got %q, want %q", p, g, w)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected change %q: %s", p, g)
		}
	}
	if _, ok := got[f("read-only-access")]; ok {
		t.Error("reading a file was reported as a change (atime must never count)")
	}

	// --full re-reads everything and finds the same changes.
	if code, full := checkJSON(t, db, "--full"); code != ExitChanges || len(full.Changes) != len(rep.Changes) {
		t.Fatalf("check --full: exit %d, %d changes, want %d", code, len(full.Changes), len(rep.Changes))
	}

	// accept one path, then everything: the check is clean again.
	if code, _, errOut := run(t, "accept", "--db", db, "--note", "deploy 42", f("content")); code != 0 {
		t.Fatalf("accept exited %d: %s", code, errOut)
	}
	_, rep = checkJSON(t, db)
	if _, ok := changesByPath(t, rep)[f("content")]; ok {
		t.Error("accepted path still reported")
	}
	code, out, errOut := run(t, "show", "--db", db, f("content"))
	if code != 0 || !strings.Contains(out, "deploy 42") || !strings.Contains(out, "sha256:") {
		t.Errorf("show exit %d:\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run(t, "accept", "--db", db); code != 0 {
		t.Fatalf("accept all exited %d: %s", code, errOut)
	}
	if code, rep := checkJSON(t, db); code != ExitOK {
		t.Fatalf("after accept: exit %d, changes %v", code, changesByPath(t, rep))
	}
}

// sameOrSuperset reports whether got has the kind of want and every
// attribute want lists.
func sameOrSuperset(got, want string) bool {
	gk, ga, _ := strings.Cut(got, ":")
	wk, wa, _ := strings.Cut(want, ":")
	if gk != wk {
		return false
	}
	gs := strings.Split(ga, ",")
	for _, a := range strings.Split(wa, ",") {
		if a != "" && !slices.Contains(gs, a) {
			return false
		}
	}
	return true
}

func TestEndToEndRootOnlyAttributes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown, setcap and trusted xattrs")
	}
	haveTool(t, "setfacl")
	haveTool(t, "setfattr")
	haveTool(t, "setcap")
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "baseline.vgl")
	f := func(name string) string { return filepath.Join(tree, name) }
	for _, n := range []string{"owner", "acl", "cap", "label", "dev-null-like"} {
		writeFile(t, f(n), n, 0o644)
	}
	if err := syscall.Mknod(f("chardev"), syscall.S_IFCHR|0o600, 1<<8|3); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "baseline", "--db", db, tree); code != 0 {
		t.Fatalf("baseline exited %d: %s", code, errOut)
	}
	mustRun(t, "chown", "65534:65534", f("owner"))
	mustRun(t, "setfacl", "-m", "u:65534:r", f("acl"))
	mustRun(t, "setcap", "cap_net_raw+ep", f("cap"))
	mustRun(t, "setfattr", "-n", "trusted.vigil", "-v", "label", f("label"))

	code, rep := checkJSON(t, db)
	if code != ExitChanges {
		t.Fatalf("check exit %d", code)
	}
	got := changesByPath(t, rep)
	for p, w := range map[string]string{
		f("owner"): "modified:uid,gid",
		f("acl"):   "modified:acl",
		f("cap"):   "modified:xattrs",
		f("label"): "modified:xattrs",
	} {
		if !sameOrSuperset(got[p], w) {
			t.Errorf("%s: got %q, want %q", p, got[p], w)
		}
	}
	if _, ok := got[f("chardev")]; ok {
		t.Error("device node reported as changed")
	}
	for _, c := range rep.Changes {
		if c.Path == f("cap") && !strings.Contains(c.New.Xattrs["security.capability"], "base64:") {
			t.Errorf("capability xattr not encoded losslessly: %v", c.New.Xattrs)
		}
	}
	// The human report decodes the capability.
	_, out, _ := run(t, "check", "--db", db)
	if !strings.Contains(out, "cap_net_raw") {
		t.Errorf("human report does not name the capability:\n%s", out)
	}
}

func TestCheckRefusesDamagedBaseline(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "baseline.vgl")
	writeFile(t, filepath.Join(tree, "a"), "a", 0o644)
	if code, _, errOut := run(t, "baseline", "--db", db, tree); code != 0 {
		t.Fatalf("baseline exited %d: %s", code, errOut)
	}
	orig, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func([]byte) []byte{
		"flipped byte": func(b []byte) []byte { b = slices.Clone(b); b[len(b)/2] ^= 1; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-10] },
		"appended":     func(b []byte) []byte { return append(slices.Clone(b), '\n') },
		"empty":        func([]byte) []byte { return nil },
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(db, mut(orig), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := run(t, "check", "--db", db)
			if code != ExitError {
				t.Fatalf("exit %d, want %d; stdout %q", code, ExitError, out)
			}
			if !strings.Contains(errOut, "tampered") && !strings.Contains(errOut, "damaged") {
				t.Errorf("message does not say the baseline was tampered with or damaged: %q", errOut)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("want one line on stderr, got %q", errOut)
			}
		})
	}
	os.Remove(db)
	code, _, errOut := run(t, "check", "--db", db)
	if code != ExitError || !strings.Contains(errOut, "vigil baseline") {
		t.Errorf("missing baseline: exit %d, %q", code, errOut)
	}
}

var _ = fim.ComparePaths

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// TestEndToEndDeviceNumbers: check, show and the JSON report carry the
// device number of device nodes, and a node replaced by one with another
// major:minor is an rdev change.
func TestEndToEndDeviceNumbers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates device nodes with mknod")
	}
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "baseline.vgl")
	node := filepath.Join(tree, "tty")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(node, syscall.S_IFCHR|0o620, 4<<8|1); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "baseline", "--db", db, tree); code != 0 {
		t.Fatalf("baseline exited %d: %s", code, errOut)
	}
	code, out, errOut := run(t, "show", "--db", db, "--json", node)
	if code != 0 || !strings.Contains(out, `"rdev": "4:1"`) {
		t.Fatalf("show --json exit %d: %s%s", code, out, errOut)
	}
	if _, out, _ := run(t, "show", "--db", db, node); !strings.Contains(out, "rdev:        4:1") {
		t.Errorf("show does not give the device number:\n%s", out)
	}
	if code, rep := checkJSON(t, db); code != ExitOK {
		t.Fatalf("unchanged node: exit %d, %v", code, changesByPath(t, rep))
	}

	removeFile(t, node)
	if err := syscall.Mknod(node, syscall.S_IFCHR|0o620, 4<<8|2); err != nil {
		t.Fatal(err)
	}
	code, rep := checkJSON(t, db)
	if code != ExitChanges {
		t.Fatalf("replaced node: exit %d", code)
	}
	var found bool
	for _, c := range rep.Changes {
		if c.Path != node {
			continue
		}
		found = true
		if !slices.Contains(c.Changed, "rdev") || c.Old.Rdev != "4:1" || c.New.Rdev != "4:2" {
			t.Errorf("change %v: rdev %q -> %q", c.Changed, c.Old.Rdev, c.New.Rdev)
		}
	}
	if !found {
		t.Fatalf("replaced node not reported: %v", changesByPath(t, rep))
	}
	if _, out, _ := run(t, "check", "--db", db); !strings.Contains(out, "4:1 → 4:2") {
		t.Errorf("human report does not show the device numbers:\n%s", out)
	}
}
