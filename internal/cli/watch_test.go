package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// watchLine is the part of a watch JSON line the tests look at.
type watchLine struct {
	Path    string   `json:"path"`
	Type    string   `json:"type"`
	Changed []string `json:"changed"`
	Source  string   `json:"source"`
	Time    string   `json:"time"`
	Who     *struct {
		Attribution string  `json:"attribution"`
		UID         *uint32 `json:"uid"`
		AUID        *uint32 `json:"auid"`
		Exe         string  `json:"exe"`
	} `json:"who"`
	Health *struct {
		Kind string `json:"kind"`
	} `json:"health"`
}

// startWatch runs `vigil watch --json` in-process and returns a channel of
// its output lines and a function that stops it and returns its status.
func startWatch(t *testing.T, args ...string) (<-chan watchLine, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	lines := make(chan watchLine, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l watchLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("watch line is not JSON: %v: %s", err, sc.Text())
				continue
			}
			lines <- l
		}
	}()
	done := make(chan int, 1)
	var errOut strings.Builder
	go func() {
		done <- Main(ctx, append([]string{"watch", "--json"}, args...), strings.NewReader(""), pw, &errOut)
		pw.Close()
	}()
	stop := func() int {
		cancel()
		code := <-done
		if code != 0 {
			t.Logf("watch stderr: %s", errOut.String())
		}
		return code
	}
	t.Cleanup(func() { cancel() })
	return lines, stop
}

// await reads lines until one satisfies ok, failing after a deadline.
func await(t *testing.T, lines <-chan watchLine, what string, ok func(watchLine) bool) watchLine {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, open := <-lines:
			if !open {
				t.Fatalf("watch ended before %s", what)
			}
			if ok(l) {
				return l
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestWatchReportsStartupAndLiveChangesWithWho(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: fanotify and audit")
	}
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "baseline.vgl")
	writeFile(t, filepath.Join(tree, "conf"), "v1\n", 0o644)
	writeFile(t, filepath.Join(tree, "while-down"), "v1\n", 0o644)
	// The writer of another uid must be able to reach the file.
	for d := tree; d != filepath.Dir(filepath.Dir(root)); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errOut := run(t, "baseline", "--db", db, tree); code != 0 {
		t.Fatalf("baseline: %d %s", code, errOut)
	}
	// Changed while Vigil was not running: reported at start.
	writeFile(t, filepath.Join(tree, "while-down"), "v2\n", 0o644)

	lines, stop := startWatch(t, "--db", db)
	l := await(t, lines, "startup change", func(l watchLine) bool { return l.Path == filepath.Join(tree, "while-down") })
	if l.Source != "startup" || l.Type != "modified" || l.Who == nil || l.Who.Attribution != "unavailable" {
		t.Errorf("startup change: %+v", l)
	}
	await(t, lines, "watcher-started", func(l watchLine) bool { return l.Health != nil && l.Health.Kind == "watcher-started" })

	// A short-lived writer with another uid.
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "sh", "-c", "echo x >> "+filepath.Join(tree, "conf"))
	if err := os.Chmod(filepath.Join(tree, "conf"), 0o666); err != nil {
		t.Fatal(err)
	}
	await(t, lines, "chmod", func(l watchLine) bool {
		return l.Path == filepath.Join(tree, "conf") && strings.Contains(strings.Join(l.Changed, ","), "mode")
	})
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("setpriv: %v %s", err, out)
	}
	l = await(t, lines, "write by uid 65534", func(l watchLine) bool {
		return l.Path == filepath.Join(tree, "conf") && strings.Contains(strings.Join(l.Changed, ","), "content")
	})
	if l.Source != "fanotify" && l.Source != "inotify" {
		t.Errorf("source = %q", l.Source)
	}
	if l.Who == nil {
		t.Fatal("no who")
	}
	if l.Who.Attribution == "unavailable" {
		t.Logf("who-data unavailable here (another audit listener?): %+v", l.Who)
	} else if l.Who.UID == nil || *l.Who.UID != 65534 {
		t.Errorf("who.uid = %v, want 65534 (who %+v)", l.Who.UID, l.Who)
	}
	if code := stop(); code != 0 {
		t.Errorf("watch exited %d", code)
	}
}
