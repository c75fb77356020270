//go:build linux

package fanotify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/watch/fsevent"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: fanotify filesystem marks need CAP_SYS_ADMIN")
	}
}

// start opens a backend on a fresh directory and runs it until the test
// ends.
func start(t *testing.T, opts Options) (string, *Backend, <-chan fsevent.Raw) {
	t.Helper()
	needRoot(t)
	root := t.TempDir()
	b, err := Open([]string{root}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan fsevent.Raw, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		b.Close()
	})
	return root, b, out
}

// await reads events until every path in want was seen (failing after a
// generous deadline) and returns all events seen.
func await(t *testing.T, out <-chan fsevent.Raw, want ...string) []fsevent.Raw {
	t.Helper()
	missing := make(map[string]bool)
	for _, w := range want {
		missing[w] = true
	}
	var seen []fsevent.Raw
	deadline := time.After(10 * time.Second)
	for len(missing) > 0 {
		select {
		case r := <-out:
			seen = append(seen, r)
			delete(missing, r.Path)
		case <-deadline:
			t.Fatalf("no event for %v; saw %v", missing, seen)
		}
	}
	return seen
}

func TestOperations(t *testing.T) {
	root, _, out := start(t, Options{})
	p := func(n string) string { return filepath.Join(root, n) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		do   func()
		want []string
	}{
		{"create", func() { must(os.WriteFile(p("a"), []byte("1"), 0o644)) }, []string{p("a")}},
		{"write", func() { must(os.WriteFile(p("a"), []byte("2"), 0o644)) }, []string{p("a")}},
		{"chmod", func() { must(os.Chmod(p("a"), 0o600)) }, []string{p("a")}},
		{"chown", func() { must(os.Chown(p("a"), 65534, 65534)) }, []string{p("a")}},
		{"setxattr", func() { must(unix.Setxattr(p("a"), "user.vigil", []byte("x"), 0)) }, []string{p("a")}},
		{"rename", func() { must(os.Rename(p("a"), p("b"))) }, []string{p("a"), p("b")}},
		{"mkdir", func() { must(os.Mkdir(p("d"), 0o755)) }, []string{p("d")}},
		{"create in new dir", func() { must(os.WriteFile(p("d/f"), nil, 0o644)) }, []string{p("d/f")}},
		{"rename dir", func() { must(os.Rename(p("d"), p("e"))) }, []string{p("d"), p("e")}},
		{"write in renamed dir", func() { must(os.WriteFile(p("e/f"), []byte("x"), 0o644)) }, []string{p("e/f")}},
		{"delete", func() { must(os.Remove(p("b"))) }, []string{p("b")}},
		{"delete tree", func() { must(os.RemoveAll(p("e"))) }, []string{p("e/f"), p("e")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.do()
			seen := await(t, out, tt.want...)
			for _, r := range seen {
				if r.PID != os.Getpid() {
					t.Errorf("%s: pid %d, want %d", r.Path, r.PID, os.Getpid())
				}
			}
		})
	}
}

func TestDirMoveMarksSubtree(t *testing.T) {
	root, _, out := start(t, Options{})
	if err := os.MkdirAll(filepath.Join(root, "x/y"), 0o755); err != nil {
		t.Fatal(err)
	}
	await(t, out, filepath.Join(root, "x"), filepath.Join(root, "x/y"))
	if err := os.Rename(filepath.Join(root, "x"), filepath.Join(root, "z")); err != nil {
		t.Fatal(err)
	}
	for _, r := range await(t, out, filepath.Join(root, "x"), filepath.Join(root, "z")) {
		if !r.Subtree {
			t.Errorf("%s: Subtree not set for a moved directory", r.Path)
		}
	}
	// The cached path of x/y must follow the move.
	if err := os.WriteFile(filepath.Join(root, "z/y/f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	await(t, out, filepath.Join(root, "z/y/f"))
}

func TestOutsideRootsDropped(t *testing.T) {
	root, b, out := start(t, Options{})
	other := t.TempDir() // same file system, outside the root
	if err := os.WriteFile(filepath.Join(other, "noise"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "signal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range await(t, out, filepath.Join(root, "signal")) {
		if r.Path != filepath.Join(root, "signal") {
			t.Errorf("event outside the root: %s", r.Path)
		}
	}
	if b.Stats().Outside == 0 {
		t.Errorf("no event counted as outside: %+v", b.Stats())
	}
}

func TestOverflowReported(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	b, err := Open([]string{root}, Options{LimitedQueue: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Nobody reads yet: 20,000 creates overflow the 16,384-event queue.
	for i := range 20000 {
		f, err := os.Create(filepath.Join(root, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	out := make(chan fsevent.Raw, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx, out)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case r := <-out:
			if r.Overflow {
				return
			}
		case <-deadline:
			t.Fatalf("no overflow reported: %+v", b.Stats())
		}
	}
}

func TestPrefilledDirRename(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "old/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := Open([]string{root}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan fsevent.Raw, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, out) }()
	defer func() { cancel(); <-done; b.Close() }()
	if err := os.Rename(filepath.Join(root, "old"), filepath.Join(root, "new")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "new/sub/f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	await(t, out, filepath.Join(root, "old"), filepath.Join(root, "new"), filepath.Join(root, "new/sub/f"))
}

func TestFileAndMissingRoots(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "app.conf")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "later.d")
	b, err := Open([]string{file, missing}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan fsevent.Raw, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, out) }()
	defer func() { cancel(); <-done; b.Close() }()
	if err := os.WriteFile(filepath.Join(dir, "sibling"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(missing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(missing, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range await(t, out, file, missing, filepath.Join(missing, "x")) {
		if r.Path == filepath.Join(dir, "sibling") {
			t.Errorf("event for a path outside the roots: %s", r.Path)
		}
	}
}
