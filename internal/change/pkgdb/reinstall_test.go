package pkgdb

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/fim"
)

// TestReinstallAuthorized is the package example of docs/change-control.md
// run for real: it builds a one-file package, installs it and reinstalls it
// with apt-get, and classifies the reinstalled file as a dpkg change. It
// changes the system's package database (and purges the package at the
// end), so it only runs as root with VIGIL_DPKG_INSTALL_TEST=1.
func TestReinstallAuthorized(t *testing.T) {
	if os.Getenv("VIGIL_DPKG_INSTALL_TEST") != "1" {
		t.Skip("installs a package: set VIGIL_DPKG_INSTALL_TEST=1 to run")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: installs a package with apt-get")
	}
	const pkg, file = "vigil-reinstall-demo", "/usr/share/vigil-reinstall-demo/hello.txt"
	build := t.TempDir()
	tree := filepath.Join(build, pkg)
	mustWrite(t, filepath.Join(tree, "DEBIAN/control"), "Package: "+pkg+"\nVersion: 1.0-1\nArchitecture: all\n"+
		"Maintainer: Vigil tests <tests@localhost>\nDescription: one file, for Vigil's package authority test\n")
	mustWrite(t, filepath.Join(tree, file), "hello from a package\n")
	run(t, "dpkg-deb", "--root-owner-group", "--build", tree, filepath.Join(build, pkg+".deb"))
	t.Cleanup(func() { _ = exec.Command("dpkg", "--purge", pkg).Run() })
	run(t, "apt-get", "install", "-y", filepath.Join(build, pkg+".deb"))

	// Someone edits the file; the reinstall puts the package's content back.
	mustWrite(t, file, "edited by hand\n")
	before, err := OpenDpkg(t.Context(), "/")
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := Check(t.Context(), before, file, fim.SHA256); err != nil || ev == nil || ev.Matches {
		t.Fatalf("hand-edited file matches its package: %v %+v", err, ev)
	}
	run(t, "apt-get", "install", "-y", "--reinstall", filepath.Join(build, pkg+".deb"))

	db, err := OpenDpkg(t.Context(), "/")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Check(t.Context(), db, file, fim.SHA256)
	if err != nil || ev == nil {
		t.Fatalf("check %s: %v %+v", file, err, ev)
	}
	cfg := &change.Config{}
	c, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	newContent, err := fim.ParseDigest(ev.Content)
	if err != nil {
		t.Fatal(err)
	}
	old := &fim.Entry{Path: file, Type: fim.TypeFile, Mode: 0o644, Content: fim.Digest{Alg: fim.SHA256, Sum: make([]byte, 32)}}
	nw := *old
	nw.Content, nw.Inode = newContent, 2
	auid := uint32(1000)
	v := c.Classify(change.Input{
		Change: fim.Change{Path: file, Kind: fim.Modified, Old: old, New: &nw,
			Changed: fim.AttrSet(fim.AttrContent) | fim.AttrSet(fim.AttrInode)},
		Host: "app-1", At: time.Now(), Now: time.Now(),
		Actor:   &change.Actor{UID: 0, AUID: &auid, User: "root", Exe: "/usr/bin/dpkg", Comm: "dpkg"},
		Package: ev,
	})
	t.Logf("evidence %+v\nverdict %+v", ev, v)
	if !v.Authorized || v.By.Kind != change.ByPackage || v.By.ID != pkg {
		t.Fatalf("reinstall not authorized as a package update: %s", v.Explanation)
	}
}

func mustWrite(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
