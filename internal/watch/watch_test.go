package watch

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/whodata"
)

const testKey = "vigil-test-watch"

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: fanotify filesystem marks and audit rules need CAP_SYS_ADMIN and CAP_AUDIT_CONTROL")
	}
}

// lockAuditTests serialises audit users across test binaries that go test
// runs in parallel: a host has one audit listener.
func lockAuditTests(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/tmp/vigil-audit-tests.lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// openDir makes a world-writable root, so that other users can write in
// it (t.TempDir's parent is private to root).
func openDir(t *testing.T, parent string) string {
	t.Helper()
	dir, err := os.MkdirTemp(parent, "vigil-watch-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startWatcher(t *testing.T, root string, opts Options) *Watcher {
	t.Helper()
	needRoot(t)
	if !opts.NoWhoData {
		lockAuditTests(t)
		opts.Attribution.AuditKey = testKey
		opts.Attribution.AuditLock = filepath.Join(t.TempDir(), "audit.lock")
		// Attribution returns as soon as the audit record arrives; a long
		// grace only bounds a failing test.
		opts.Attribution.Grace = 5 * time.Second
	}
	w, err := New(t.Context(), []string{root}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		for range w.Events() { // drained and closed after Close
		}
		if opts.NoWhoData {
			return
		}
		rules, err := whodata.AuditRules(testKey)
		if err != nil {
			t.Errorf("list audit rules: %v", err)
		}
		if len(rules) != 0 {
			t.Errorf("audit rules left after Close: %q", rules)
		}
	})
	return w
}

// waitFor returns the first event matching pred. The deadline only bounds
// a failing test; it is not how the test synchronises.
func waitFor(t *testing.T, w *Watcher, what string, pred func(Event) bool) Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	var seen []string
	for {
		select {
		case e, ok := <-w.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s (err %v)", what, w.Err())
			}
			if pred(e) {
				return e
			}
			if len(seen) < 20 {
				seen = append(seen, describe(e))
			}
		case <-deadline:
			t.Fatalf("no event for %s; first events seen: %v", what, seen)
		}
	}
}

func describe(e Event) string {
	if e.Health != nil {
		return fmt.Sprintf("health %s: %s", e.Health.Kind, e.Health.Message)
	}
	return fmt.Sprintf("%s %s rescan=%v", e.Source, e.Path, e.Rescan)
}

func pathIs(p string) func(Event) bool {
	return func(e Event) bool { return e.Health == nil && e.Path == p }
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v: %s", name, args, err, out)
	}
}

func TestStartedHealthFirst(t *testing.T) {
	w := startWatcher(t, t.TempDir(), Options{NoWhoData: true})
	e := <-w.Events()
	if e.Health == nil || e.Health.Kind != HealthStarted || w.Backend() != SourceFanotify {
		t.Fatalf("first event %s, backend %s", describe(e), w.Backend())
	}
}

func TestOperations(t *testing.T) {
	for _, backend := range []BackendKind{BackendFanotify, BackendInotify} {
		t.Run(fmt.Sprint(backend), func(t *testing.T) {
			root := t.TempDir()
			w := startWatcher(t, root, Options{Backend: backend, NoWhoData: true})
			p := func(n string) string { return filepath.Join(root, n) }
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			steps := []struct {
				name string
				do   func()
				want []string
			}{
				{"create", func() { must(os.WriteFile(p("a"), []byte("1"), 0o644)) }, []string{p("a")}},
				{"write", func() { must(os.WriteFile(p("a"), []byte("22"), 0o644)) }, []string{p("a")}},
				{"chmod", func() { must(os.Chmod(p("a"), 0o600)) }, []string{p("a")}},
				{"chown", func() { must(os.Chown(p("a"), 65534, 65534)) }, []string{p("a")}},
				{"setxattr", func() { must(unix.Setxattr(p("a"), "user.vigil", []byte("x"), 0)) }, []string{p("a")}},
				{"rename", func() { must(os.Rename(p("a"), p("b"))) }, []string{p("a"), p("b")}},
				{"mkdir", func() { must(os.Mkdir(p("d"), 0o755)) }, []string{p("d")}},
				{"create in new dir", func() { must(os.WriteFile(p("d/f"), nil, 0o644)) }, []string{p("d/f")}},
				{"delete", func() { must(os.Remove(p("b"))) }, []string{p("b")}},
			}
			for _, s := range steps {
				s.do()
				// Events for different paths may arrive in any order.
				missing := map[string]bool{}
				for _, want := range s.want {
					missing[want] = true
				}
				for len(missing) > 0 {
					e := waitFor(t, w, fmt.Sprintf("%s %v", s.name, missing), func(e Event) bool { return missing[e.Path] })
					delete(missing, e.Path)
				}
			}
		})
	}
}

func TestWhoOtherUID(t *testing.T) {
	root := openDir(t, "/tmp")
	w := startWatcher(t, root, Options{})
	f := filepath.Join(root, "f")
	run(t, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "sh", "-c", "echo x >> "+f)
	e := waitFor(t, w, f, pathIs(f))
	who := e.Who
	if who == nil || who.Attribution != whodata.AttributionAudit {
		t.Fatalf("who = %+v", who)
	}
	if who.UID == nil || *who.UID != 65534 || who.User != "nobody" || who.GID == nil || *who.GID != 65534 {
		t.Errorf("uid %v user %q gid %v, want nobody", who.UID, who.User, who.GID)
	}
}

func TestWhoLoginUserSurvivesSu(t *testing.T) {
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("needs useradd")
	}
	root := openDir(t, "/tmp")
	const name = "vigiltestlogin"
	exec.Command("userdel", name).Run() // left over from an interrupted run
	run(t, "useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name)
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	w := startWatcher(t, root, Options{})
	f := filepath.Join(root, "f")
	// Simulate a login: set the login uid in a child, then switch user.
	script := fmt.Sprintf(`echo %d > /proc/self/loginuid && exec su nobody -s /bin/sh -c "echo x >> %s"`, uid, f)
	run(t, "sh", "-c", script)
	e := waitFor(t, w, f, pathIs(f))
	who := e.Who
	if who == nil || who.Attribution != whodata.AttributionAudit {
		t.Fatalf("who = %+v", who)
	}
	if who.AUID == nil || uint64(*who.AUID) != uid || who.LoginUser != name {
		t.Errorf("auid %v login_user %q, want %d %s", who.AUID, who.LoginUser, uid, name)
	}
	if who.UID == nil || *who.UID != 65534 {
		t.Errorf("uid %v, want 65534", who.UID)
	}
	if who.Session == nil || *who.Session == whodata.UnsetID {
		t.Errorf("session %v, want a session id", who.Session)
	}
}

func TestWhoShortLivedProcess(t *testing.T) {
	root := t.TempDir()
	w := startWatcher(t, root, Options{})
	f := filepath.Join(root, "f")
	run(t, "sh", "-c", "echo x >> "+f)
	e := waitFor(t, w, f, pathIs(f))
	who := e.Who
	if who == nil || who.Attribution != whodata.AttributionAudit {
		t.Fatalf("who = %+v", who)
	}
	if !strings.HasSuffix(who.Exe, "/dash") && !strings.HasSuffix(who.Exe, "/sh") {
		t.Errorf("exe = %q", who.Exe)
	}
	if who.PID == 0 || who.PID == os.Getpid() || who.PPID != os.Getpid() {
		t.Errorf("pid %d ppid %d, want a child of %d", who.PID, who.PPID, os.Getpid())
	}
	if len(who.Cmdline) != 3 || who.Cmdline[2] != "echo x >> "+f {
		t.Errorf("cmdline = %q", who.Cmdline)
	}
}

func TestOverflowRecoveredByRescan(t *testing.T) {
	root := openDir(t, "/dev/shm")
	w := startWatcher(t, root, Options{NoWhoData: true, LimitedQueue: true, maxPending: 8})
	// Nobody reads events while 60,000 files are created: user-space
	// buffers fill, reading stops, and the kernel's 16,384-event queue
	// overflows.
	for i := range 60000 {
		fd, err := unix.Open(filepath.Join(root, strconv.Itoa(i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	waitFor(t, w, "overflow", func(e Event) bool { return e.Health != nil && e.Health.Kind == HealthOverflow })
	e := waitFor(t, w, "rescan of root", func(e Event) bool { return e.Health == nil && e.Rescan && e.Path == root })
	if e.Source != SourceRescan {
		t.Errorf("rescan source = %s", e.Source)
	}
	if w.Stats().Overflows == 0 {
		t.Errorf("overflow not counted: %+v", w.Stats())
	}
}

func TestInotifyNewDirectoryRescanned(t *testing.T) {
	root := t.TempDir()
	w := startWatcher(t, root, Options{Backend: BackendInotify, NoWhoData: true})
	d := filepath.Join(root, "d")
	if err := os.MkdirAll(filepath.Join(d, "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "e", "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The file may be created before the watch on d/e exists; then the
	// subtree rescan of d is what reports it.
	e := waitFor(t, w, "rescan of new dir", pathIs(d))
	if !e.Rescan {
		t.Errorf("new directory not marked for subtree rescan: %s", describe(e))
	}
}

func TestAutoFallbackReported(t *testing.T) {
	root := t.TempDir()
	w := startWatcher(t, root, Options{NoWhoData: true, refuseFanotify: true})
	if w.Backend() != SourceInotify {
		t.Fatalf("backend = %s, want inotify", w.Backend())
	}
	if e := <-w.Events(); e.Health == nil || e.Health.Kind != HealthStarted {
		t.Fatalf("first event %s", describe(e))
	}
	e := <-w.Events()
	if e.Health == nil || e.Health.Kind != HealthFallback || !strings.Contains(e.Health.Message, "not permitted") {
		t.Fatalf("second event %s, want a fallback health event", describe(e))
	}
	f := filepath.Join(root, "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if e := waitFor(t, w, f, pathIs(f)); e.Source != SourceInotify {
		t.Errorf("source = %s", e.Source)
	}
}

func TestModifiedAndRestoredReported(t *testing.T) {
	root := t.TempDir()
	f := filepath.Join(root, "f")
	if err := os.WriteFile(f, []byte("good"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := startWatcher(t, root, Options{NoWhoData: true})
	if err := os.WriteFile(f, []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte("good"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The content is back to the baseline; the event must still come,
	// with a count that tells the caller something touched the file.
	e := waitFor(t, w, f, pathIs(f))
	if e.Count == 0 || e.Ops&(OpWrite|OpCloseWrite) == 0 {
		t.Errorf("event %+v: no count or write hint", e)
	}
}

func TestAuditLossRescans(t *testing.T) {
	root := t.TempDir()
	w := startWatcher(t, root, Options{NoWhoData: true})
	w.onNotice(whodata.Notice{Kind: whodata.NoticeLost, Lost: 5, Reason: "audit records lost"})
	e := waitFor(t, w, "degraded", func(e Event) bool {
		return e.Health != nil && e.Health.Kind == HealthAttributionDegraded
	})
	if e.Health.Dropped != 5 {
		t.Errorf("dropped = %d", e.Health.Dropped)
	}
	waitFor(t, w, "rescan health", func(e Event) bool { return e.Health != nil && e.Health.Kind == HealthRescan })
	e = waitFor(t, w, "rescan", func(e Event) bool { return e.Health == nil && e.Rescan && e.Path == root })
	if e.Source != SourceRescan || e.Who != nil {
		t.Errorf("rescan event %+v", e)
	}
	if s := w.Stats(); s.AuditLost != 5 || s.Rescans != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestFileAndMissingRoots(t *testing.T) {
	for _, backend := range []BackendKind{BackendFanotify, BackendInotify} {
		t.Run(backend.String(), func(t *testing.T) {
			needRoot(t)
			dir := t.TempDir()
			file := filepath.Join(dir, "app.conf")
			if err := os.WriteFile(file, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			missing := filepath.Join(dir, "later.d")
			w, err := New(t.Context(), []string{file, missing}, Options{Backend: backend, NoWhoData: true})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				w.Close()
				for range w.Events() {
				}
			}()
			sibling := filepath.Join(dir, "sibling")
			if err := os.WriteFile(sibling, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(missing, 0o755); err != nil {
				t.Fatal(err)
			}
			inner := filepath.Join(missing, "x")
			if err := os.WriteFile(inner, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{file: true, missing: true}
			for len(want) > 0 {
				e := waitFor(t, w, fmt.Sprint(want), func(e Event) bool { return e.Health == nil })
				if e.Path == sibling {
					t.Fatalf("event outside the roots: %s", e.Path)
				}
				delete(want, e.Path)
			}
		})
	}
}
