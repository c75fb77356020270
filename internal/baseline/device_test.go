package baseline_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/baseline"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/integrity"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/signing"
)

// collect gathers what a check reports.
type collect struct{ changes []*fim.Change }

func (c *collect) Change(ch *fim.Change, _ *policy.Rule) error {
	cp := *ch
	c.changes = append(c.changes, &cp)
	return nil
}

func (c *collect) Problem(path string, err error) error { return err }

func mknod(t *testing.T, path string, mode uint32, major, minor uint32) {
	t.Helper()
	if err := unix.Mknod(path, mode, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatalf("mknod %s: %v", path, err)
	}
}

// replaceNode replaces a device node with one of another number, as an
// intruder turning a harmless node into a raw disk would.
func replaceNode(t *testing.T, path string, mode uint32, major, minor uint32) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	mknod(t, path, mode, major, minor)
}

func check(t *testing.T, path string, v *signing.Key, pol *policy.Policy) (int, []*fim.Change) {
	t.Helper()
	r, err := baseline.Open(path, v.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	version := r.Header().Version
	var c collect
	if _, err := integrity.Check(t.Context(), r, pol, integrity.Options{}, &c); err != nil {
		t.Fatal(err)
	}
	return version, c.changes
}

func rdevOf(t *testing.T, path, entry string, v *signing.Key) string {
	t.Helper()
	r, err := baseline.Open(path, v.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		e, _, err := r.Next()
		if err == io.EOF {
			t.Fatalf("%s not in the baseline", entry)
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Path == entry {
			return e.RdevString()
		}
	}
}

// downgrade rewrites the baseline at path as format version 1.
func downgrade(t *testing.T, path string, k *signing.Key) {
	t.Helper()
	r, err := baseline.Open(path, k.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := baseline.CreateVersion1(path, k.Signer(), r.Header())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for {
		e, tag, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(e, tag); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceNodes runs the integrity engine over real device nodes: an
// unchanged node is no change, a node replaced by one with another major
// or minor number is an rdev change, and a version-1 baseline (which has
// no device numbers) is read without spurious changes until an accept
// records the numbers.
func TestDeviceNodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates device nodes with mknod")
	}
	dir := t.TempDir()
	null, disk := filepath.Join(dir, "null"), filepath.Join(dir, "disk")
	mknod(t, null, unix.S_IFCHR|0o666, 1, 3)
	mknod(t, disk, unix.S_IFBLK|0o660, 8, 1)
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	k, err := signing.LoadOrCreate(filepath.Join(state, "key"), "vigil-test")
	if err != nil {
		t.Fatal(err)
	}
	pol := policy.ForPaths([]string{dir})
	src, err := policy.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(state, "baseline.vgl")
	if _, err := integrity.Build(t.Context(), db, k.Signer(), pol, src, baseline.Actor{}, "test", integrity.Options{}, &collect{}); err != nil {
		t.Fatal(err)
	}
	if got := rdevOf(t, db, disk, k); got != "8:1" {
		t.Fatalf("baseline rdev of %s = %q, want 8:1", disk, got)
	}
	if v, cs := check(t, db, k, pol); v != baseline.Version || len(cs) != 0 {
		t.Fatalf("unchanged nodes (version %d): %d changes: %+v", v, len(cs), cs)
	}

	// A version-1 baseline of the same tree: no device numbers, and no
	// spurious changes for them.
	downgrade(t, db, k)
	if got := rdevOf(t, db, disk, k); got != "" {
		t.Fatalf("version-1 baseline has rdev %q", got)
	}
	if v, cs := check(t, db, k, pol); v != 1 || len(cs) != 0 {
		t.Fatalf("version-1 baseline (version %d): %d changes: %+v", v, len(cs), cs)
	}
	// Under a version-1 baseline a replaced node may still show (new
	// inode or times, unless the file system reused both), but its rdev is
	// unknown and so never listed.
	replaceNode(t, disk, unix.S_IFBLK|0o660, 8, 2)
	_, cs := check(t, db, k, pol)
	for _, c := range cs {
		if c.Changed.Has(fim.AttrRdev) {
			t.Fatalf("rdev reported against a version-1 baseline: %s %s", c.Path, c.Changed)
		}
	}
	replaceNode(t, disk, unix.S_IFBLK|0o660, 8, 1)

	// Accepting writes the current format and records the numbers.
	if _, err := integrity.Accept(t.Context(), db, k.Signer(), k.Verifier(), pol, nil, baseline.Actor{}, "record device numbers", integrity.Options{}, &collect{}); err != nil {
		t.Fatal(err)
	}
	if got := rdevOf(t, db, disk, k); got != "8:1" {
		t.Fatalf("after accept, rdev of %s = %q, want 8:1", disk, got)
	}
	if v, cs := check(t, db, k, pol); v != baseline.Version || len(cs) != 0 {
		t.Fatalf("after accept (version %d): %+v", v, cs)
	}

	// Another minor, then another major: both are rdev changes. Under the
	// binaries set (no inode, no times) rdev is all that shows.
	bin := policy.ForPaths([]string{dir})
	bin.Rules[0].Check = fim.Check{Attrs: fim.AllAttrs.Without(fim.AttrInode).Without(fim.AttrMtime).Without(fim.AttrCtime)}
	for _, n := range []struct{ major, minor uint32 }{{8, 2}, {259, 1}} {
		replaceNode(t, disk, unix.S_IFBLK|0o660, n.major, n.minor)
		_, cs := check(t, db, k, bin)
		if len(cs) != 1 || cs[0].Path != disk || cs[0].Changed.String() != "rdev" {
			t.Fatalf("node replaced by %d:%d: %+v", n.major, n.minor, cs)
		}
		if got := cs[0].Old.RdevString() + " -> " + cs[0].New.RdevString(); got != "8:1 -> "+(fim.DevNumber{Major: n.major, Minor: n.minor}).String() {
			t.Fatalf("change %s", got)
		}
	}
}
