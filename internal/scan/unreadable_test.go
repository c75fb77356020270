//go:build linux

package scan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vigilfim/vigil/internal/fim"
)

const childEnv = "VIGIL_SCAN_UNREADABLE_CHILD"

// TestUnreadable scans, as an unprivileged user, a tree where a file's
// content and a directory's listing are denied. Root can read everything,
// so the scan runs in a child process (this test binary) as nobody.
func TestUnreadable(t *testing.T) {
	if root := os.Getenv(childEnv); root != "" {
		unreadableChild(t, root)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a child scan as another user")
	}
	work := t.TempDir()
	for d := work; d != "/"; d = filepath.Dir(d) {
		if strings.HasPrefix(d, os.TempDir()+"/") {
			os.Chmod(d, 0o755) // let nobody traverse to the tree
		}
	}
	root := filepath.Join(work, "tree")
	tree(t, root, "ok=1", "secret=2", "closed/inner=3", "closed/sub/deep=4", "open/x=5")
	os.Chmod(filepath.Join(root, "secret"), 0o600)
	os.Chmod(filepath.Join(root, "closed"), 0o700)

	items, _ := scanAll(t, pol(rule(root)), nil, Options{})
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(baseline(items)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "base.gob"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(work, "scan.test")
	copyFile(t, os.Args[0], bin)

	cmd := exec.Command(bin, "-test.run=^TestUnreadable$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rel, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), " => "); ok {
			got[rel] = rest
		}
	}
	want := map[string]string{
		".":               "scanned",
		"ok":              "scanned",
		"secret":          "failed permission (entry kept)",
		"closed":          "failed permission (old kept)",
		"closed/inner":    "failed permission (old kept)",
		"closed/sub":      "failed permission (old kept)",
		"closed/sub/deep": "failed permission (old kept)",
		"open":            "scanned",
		"open/x":          "scanned",
	}
	for rel, w := range want {
		if got[rel] != w {
			t.Errorf("%s: got %q, want %q", rel, got[rel], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("child reported %d items, want %d:\n%s", len(got), len(want), out)
	}
}

func unreadableChild(t *testing.T, root string) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(root), "base.gob"))
	if err != nil {
		t.Fatal(err)
	}
	var base []*fim.Entry
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&base); err != nil {
		t.Fatal(err)
	}
	// Full: with an unchanged fingerprint the digest would be reused
	// without opening the file.
	_, err = Run(context.Background(), pol(rule(root)), &sliceOld{entries: base}, Options{Full: true}, func(it *Item) error {
		rel, _ := filepath.Rel(root, it.Path)
		desc := it.Status.String()
		if it.Status == Failed {
			switch {
			case errors.Is(it.Err, fs.ErrPermission):
				desc += " permission"
			default:
				desc += fmt.Sprintf(" %v", it.Err)
			}
			switch {
			case it.New != nil:
				desc += " (entry kept)"
			case it.Old != nil:
				desc += " (old kept)"
			}
		}
		fmt.Printf("%s => %s\n", rel, desc)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
