package whodata

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testKey keeps test rules apart from a real watcher's.
const testKey = "vigil-test-whodata"

// lockAuditTests serialises tests that use audit across packages run in
// parallel by go test: there is one audit listener per host.
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

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: audit rules and the audit listener need CAP_AUDIT_CONTROL")
	}
}

func startAttributor(t *testing.T, root string) *Attributor {
	t.Helper()
	lockAuditTests(t)
	a, err := NewAttributor(t.Context(), Options{
		Roots:     []string{root},
		AuditKey:  testKey,
		AuditLock: filepath.Join(t.TempDir(), "audit.lock"),
		Grace:     5 * time.Second, // returns as soon as the record arrives
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := a.AuditStatus(); !ok {
		a.Close()
		t.Skipf("needs audit: %s", why)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		rules, err := AuditRules(testKey)
		if err != nil {
			t.Errorf("list rules: %v", err)
		}
		if len(rules) != 0 {
			t.Errorf("rules left after close: %q", rules)
		}
	})
	return a
}

func TestAuditShortLivedWriter(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	a := startAttributor(t, dir)
	f := filepath.Join(dir, "f")
	since := time.Now()
	if out, err := exec.Command("sh", "-c", "echo x >> "+f).CombinedOutput(); err != nil {
		t.Fatalf("write: %v: %s", err, out)
	}
	w := a.Attribute(context.Background(), Query{Path: f, Since: since, Until: time.Now()})
	if w.Attribution != AttributionAudit {
		t.Fatalf("attribution = %+v", w)
	}
	if w.Exe != "/usr/bin/dash" && w.Exe != "/bin/dash" && w.Exe != "/usr/bin/sh" {
		t.Errorf("exe = %q", w.Exe)
	}
	if w.UID == nil || *w.UID != 0 || w.User != "root" {
		t.Errorf("uid = %v user = %q", w.UID, w.User)
	}
	if len(w.Cmdline) != 3 || w.Cmdline[0] != "sh" {
		t.Errorf("cmdline = %q", w.Cmdline)
	}
	t.Logf("who: %+v", *w)
}
