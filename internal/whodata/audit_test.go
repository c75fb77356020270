//go:build linux

package whodata

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"
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

// startAttributor starts audit attribution for root; the caller holds
// lockAuditTests.
func startAttributor(t *testing.T, root string) *Attributor {
	t.Helper()
	return startAttributorMode(t, root, ModeSyscall)
}

func startAttributorMode(t *testing.T, root string, mode Mode) *Attributor {
	t.Helper()
	before := auditStatus(t)
	a, err := NewAttributor(t.Context(), Options{
		Mode:      mode,
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
		after := auditStatus(t)
		if after.Enabled != before.Enabled || after.BacklogLimit != before.BacklogLimit ||
			after.BacklogWaitTime != before.BacklogWaitTime || after.PID != before.PID {
			t.Errorf("audit status not restored: before %+v, after %+v", before, after)
		}
	})
	return a
}

func TestAuditShortLivedWriter(t *testing.T) {
	needRoot(t)
	lockAuditTests(t)
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

// TestAuditProcessMode attributes a short-lived writer, gone before the
// lookup, from its exec record alone (no file rules), and a process that
// forked without exec from the fork record.
func TestAuditProcessMode(t *testing.T) {
	needRoot(t)
	lockAuditTests(t)
	dir := t.TempDir()
	// An execve rule of someone else's ahead of Vigil's (auditd with CIS
	// rules): the kernel tags records with the first matching rule's key,
	// and the records must still be used.
	foreign := testKey + "-foreign"
	ctl, err := libaudit.NewAuditClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := deleteKeyRules(ctl, foreign); err != nil {
			t.Errorf("delete foreign rules: %v", err)
		}
		ctl.Close()
	})
	if err := addProcessRules(ctl, foreign); err != nil {
		t.Fatal(err)
	}
	a := startAttributorMode(t, dir, ModeProcess)
	f := filepath.Join(dir, "f")
	since := time.Now()
	// setpriv execs sh as uid 65534, so the exec record carries that uid.
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", "echo x > /dev/null")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v", err)
	}
	pid := cmd.Process.Pid
	w := a.Attribute(t.Context(), Query{Path: f, PID: pid, Since: since, Until: time.Now()})
	if w.Attribution != AttributionAudit {
		t.Fatalf("attribution = %+v", w)
	}
	if w.PID != pid || w.UID == nil || *w.UID != 65534 || !strings.HasSuffix(w.Exe, "dash") {
		t.Errorf("who = %+v, want pid %d uid 65534 exe dash", w, pid)
	}
	if len(w.Cmdline) != 3 || w.Cmdline[0] != "sh" {
		t.Errorf("cmdline = %q", w.Cmdline)
	}

	// A subshell forks without exec (read and echo are builtins): it
	// prints its own pid, from /proc/self/stat, and exits; only the fork
	// record knows it. The trailing true keeps dash from running the
	// subshell in its own process.
	since = time.Now()
	out, err := exec.Command("sh", "-c", "(read pid rest < /proc/self/stat; echo $pid); true").Output()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("child pid %q: %v", out, err)
	}
	w = a.Attribute(t.Context(), Query{Path: f, PID: child, Since: since, Until: time.Now()})
	if w.Attribution != AttributionAudit || w.PID != child || w.PPID == 0 || !strings.HasSuffix(w.Exe, "dash") {
		t.Errorf("forked child: who = %+v", w)
	}

	// No file rules: a write leaves no record of its own.
	rules, err := AuditRules(testKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if strings.Contains(r, "-w ") || strings.Contains(r, "dir=") {
			t.Errorf("file rule in process mode: %s", r)
		}
	}
	t.Logf("rules: %q", rules)
}

func TestAuditStaleRulesRemovedAtStart(t *testing.T) {
	needRoot(t)
	lockAuditTests(t)
	// A rule left behind by a killed watcher.
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	stale := t.TempDir()
	if err := addWatchRule(c, stale, testKey); err != nil {
		c.Close()
		t.Fatal(err)
	}
	c.Close()
	root := t.TempDir()
	a := startAttributor(t, root)
	_ = a
	rules, err := AuditRules(testKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || !strings.Contains(rules[0], root) {
		t.Errorf("rules = %q, want one for %s", rules, root)
	}
}

func TestAuditBusyLock(t *testing.T) {
	needRoot(t)
	lockAuditTests(t)
	lock := filepath.Join(t.TempDir(), "audit.lock")
	f, err := lockFile(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := NewAttributor(t.Context(), Options{Roots: []string{t.TempDir()}, AuditKey: testKey, AuditLock: lock})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if ok, why := a.AuditStatus(); ok || !strings.Contains(why, ErrAuditBusy.Error()) {
		t.Errorf("audit status %v %q, want busy", ok, why)
	}
	w := a.Attribute(t.Context(), Query{Path: "/x", PID: os.Getpid(), Since: time.Now(), Until: time.Now()})
	if w.Attribution != AttributionProc || w.PID != os.Getpid() || w.Exe == "" {
		t.Errorf("fallback = %+v", w)
	}
	w = a.Attribute(t.Context(), Query{Path: "/x", Since: time.Now(), Until: time.Now()})
	if w.Attribution != AttributionUnavailable || w.Reason == "" {
		t.Errorf("no pid = %+v", w)
	}
}

func auditStatus(t *testing.T) *libaudit.AuditStatus {
	t.Helper()
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.GetStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestAuditSettingsRestoredAfterCrash plays a watcher that crashed after
// changing the kernel's audit settings: the next watcher restores the
// values the crashed one had saved, not the ones it left behind.
func TestAuditSettingsRestoredAfterCrash(t *testing.T) {
	needRoot(t)
	lockAuditTests(t)
	real := auditStatus(t)
	if real.PID != 0 {
		t.Skip("an audit daemon runs; this test plays the listener")
	}
	ctl, err := libaudit.NewAuditClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	set := func(enabled bool, limit uint32, wait int32) {
		t.Helper()
		if err := ctl.SetEnabled(enabled, libaudit.WaitForReply); err != nil {
			t.Fatal(err)
		}
		if err := ctl.SetBacklogLimit(limit, libaudit.WaitForReply); err != nil {
			t.Fatal(err)
		}
		if err := ctl.SetBacklogWaitTime(wait, libaudit.WaitForReply); err != nil {
			t.Fatal(err)
		}
	}
	defer set(real.Enabled == 1, real.BacklogLimit, int32(real.BacklogWaitTime))

	lock := filepath.Join(t.TempDir(), "audit.lock")
	// What the host had, as the crashed watcher saved it, and what it left.
	if err := saveSettings(lock+".settings", &auditSettings{Enabled: 0, BacklogLimit: 321, BacklogWaitTime: 4321}); err != nil {
		t.Fatal(err)
	}
	set(true, 8192, 0)

	a, err := NewAttributor(t.Context(), Options{Mode: ModeProcess, Roots: []string{t.TempDir()}, AuditKey: testKey, AuditLock: lock})
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := a.AuditStatus(); !ok {
		a.Close()
		t.Skipf("needs audit: %s", why)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	st := auditStatus(t)
	if st.Enabled != 0 || st.BacklogLimit != 321 || st.BacklogWaitTime != 4321 {
		t.Errorf("after close: enabled %d limit %d wait %d, want 0 321 4321", st.Enabled, st.BacklogLimit, st.BacklogWaitTime)
	}
	if _, err := os.Stat(lock + ".settings"); !os.IsNotExist(err) {
		t.Errorf("settings file left after a clean close: %v", err)
	}
}

// TestProcessRulesParsed keeps the audit rules of mode process and the
// parser's list of their syscalls in step: a call audited but not parsed
// would be dropped as a file record.
func TestProcessRulesParsed(t *testing.T) {
	for _, pr := range processRules {
		for _, sc := range strings.Fields(pr.syscalls) {
			if lifecycleCalls[sc] == 0 {
				t.Errorf("%s %s is audited but not parsed as a lifecycle call", pr.arch, sc)
			}
		}
	}
}
