//go:build linux

package whodata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/auparse"
	"github.com/elastic/go-libaudit/v2/rule"
	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/atomicfile"
)

const (
	// backlogLimit raises the kernel's audit queue (default 64) when Vigil
	// is the audit listener, as auditd does (-b 8192): bursts of writes
	// otherwise lose records. Never lowered; restored on close.
	backlogLimit = 8192
	// rawQueue is the number of messages buffered between the receive and
	// the parse goroutines; when parsing falls behind, messages are dropped
	// and counted rather than stalling the socket (the kernel would then
	// drop too, or worse, make writers wait).
	rawQueue = 16384
	// statusEvery is how often the kernel's lost counter is polled.
	statusEvery = time.Second
)

// auditSource owns Vigil's audit rules and reads audit records into an
// index: one goroutine receives (and only copies), one parses and indexes,
// one polls the kernel's loss counter.
type auditSource struct {
	cfg    auditConfig
	idx    *index
	proc   procReader
	users  *userNames
	notify func(Notice)

	lock        *os.File
	ctlMu       sync.Mutex // ctl is not safe for concurrent requests
	ctl         *libaudit.AuditClient
	recv        *libaudit.AuditClient
	listener    bool
	enabledByUs bool
	restoreWait bool
	oldWait     int32
	// restoreLimit: the backlog limit was raised and is put back on close.
	restoreLimit bool
	oldLimit     uint32

	// recordKey is the key records must carry to be used (parseRecord):
	// Vigil's own in mode syscall, anyLifecycle in mode process.
	recordKey string
	// barrier orders lookups after the records they depend on; nil when
	// Vigil reads beside auditd, whose log must not fill with them.
	barrier *barrier

	raw     chan rawMsg
	closing atomic.Bool
	done    chan struct{}
	wg      sync.WaitGroup
	dropped atomic.Uint64
}

// openAudit takes the audit lock, removes rules left by a crashed Vigil,
// becomes the audit listener (or, beside a running auditd, a multicast
// reader), enables audit and adds one watch rule per root.
func openAudit(cfg auditConfig, idx *index, proc procReader, users *userNames, notify func(Notice)) (_ *auditSource, err error) {
	a := &auditSource{cfg: cfg, idx: idx, proc: proc, users: users, notify: notify,
		recordKey: cfg.key, raw: make(chan rawMsg, rawQueue), done: make(chan struct{})}
	if cfg.mode == ModeProcess {
		a.recordKey = anyLifecycle
	}
	defer func() {
		if err != nil {
			a.release()
		}
	}()
	if a.lock, err = lockFile(cfg.lockPath); err != nil {
		return nil, err
	}
	if a.ctl, err = libaudit.NewAuditClient(nil); err != nil {
		return nil, fmt.Errorf("open audit control socket: %w", err)
	}
	st, err := a.ctl.GetStatus()
	if err != nil {
		return nil, fmt.Errorf("get audit status: %w", err)
	}
	if st.Enabled == 2 {
		return nil, ErrAuditImmutable
	}
	if _, err := deleteKeyRules(a.ctl, cfg.key); err != nil {
		return nil, err
	}
	if err := a.openReceiver(st); err != nil {
		return nil, err
	}
	// What to restore at close is what the host had before any Vigil
	// changed it: a watcher that crashed left its changes in the kernel
	// and the values it found in the settings file.
	orig := loadSettings(a.settingsPath())
	if orig == nil {
		orig = &auditSettings{Enabled: st.Enabled, BacklogLimit: st.BacklogLimit, BacklogWaitTime: st.BacklogWaitTime}
		if err := saveSettings(a.settingsPath(), orig); err != nil {
			return nil, err
		}
	}
	if st.Enabled == 0 {
		if err := a.ctl.SetEnabled(true, libaudit.WaitForReply); err != nil {
			return nil, fmt.Errorf("enable audit: %w", err)
		}
	}
	// Beside an auditd (which enables audit itself) Vigil never turns it
	// off, even if a crashed Vigil found it off.
	a.enabledByUs = orig.Enabled == 0 && (a.listener || st.Enabled == 0)
	if a.listener && st.BacklogLimit < backlogLimit {
		if err := a.ctl.SetBacklogLimit(backlogLimit, libaudit.WaitForReply); err != nil {
			return nil, fmt.Errorf("set audit backlog limit: %w", err)
		}
	}
	if a.listener && orig.BacklogLimit < backlogLimit {
		a.restoreLimit, a.oldLimit = true, orig.BacklogLimit
	}
	// With a full backlog the kernel makes every audited task wait (60 s
	// by default) for the listener: a burst of writes in a watched tree
	// then crawls (200,000 creates took 4m45s instead of seconds). For
	// Vigil a lost record costs who-data only, never a change (fanotify
	// reports the path, and the loss triggers a rescan), so as the
	// listener it tells the kernel to drop instead, and restores the old
	// value on close.
	if a.listener && st.BacklogWaitTime != 0 {
		if err := a.ctl.SetBacklogWaitTime(0, libaudit.WaitForReply); err != nil {
			return nil, fmt.Errorf("set audit backlog wait time: %w", err)
		}
	}
	if a.listener && orig.BacklogWaitTime != 0 {
		a.restoreWait, a.oldWait = true, int32(orig.BacklogWaitTime)
	}
	if cfg.mode == ModeProcess {
		if err := addProcessRules(a.ctl, cfg.key); err != nil {
			return nil, err
		}
	} else {
		for _, root := range cfg.roots {
			if err := addWatchRule(a.ctl, root, cfg.key); err != nil {
				return nil, err
			}
		}
	}
	if a.listener && cfg.mode == ModeProcess {
		a.barrier = newBarrier(a.sendUser)
	}
	re := newAssembler(2*time.Second, a.complete)
	a.wg.Add(3)
	go a.receive()
	go a.parse(re)
	go a.pollStatus(st.Lost)
	return a, nil
}

// openReceiver becomes the audit daemon when none runs, else joins the
// multicast group beside it.
func (a *auditSource) openReceiver(st *libaudit.AuditStatus) error {
	if st.PID == 0 || !processAlive(int(st.PID)) {
		c, err := libaudit.NewAuditClient(nil)
		if err != nil {
			return fmt.Errorf("open audit socket: %w", err)
		}
		if err := c.SetPID(libaudit.WaitForReply); err == nil {
			a.recv, a.listener = c, true
			return nil
		} else if !errors.Is(err, syscall.EEXIST) {
			c.Close()
			return fmt.Errorf("become audit listener: %w", err)
		}
		c.Close() // an auditd won the race: read beside it
	}
	c, err := libaudit.NewMulticastAuditClient(nil)
	if err != nil {
		return fmt.Errorf("join audit multicast group: %w", err)
	}
	a.recv = c
	return nil
}

// auditSettings are the kernel audit settings Vigil changes, saved before
// it changes them so that they are put back even after a crash.
type auditSettings struct {
	Enabled         uint32 `json:"enabled"`
	BacklogLimit    uint32 `json:"backlog_limit"`
	BacklogWaitTime uint32 `json:"backlog_wait_time"`
}

// settingsPath is beside the lock: whoever holds the lock owns the file.
func (a *auditSource) settingsPath() string { return a.cfg.lockPath + ".settings" }

// loadSettings returns the saved settings, or nil if there are none. A
// file that cannot be read or parsed is treated as absent: it only says
// what to restore, and the current values are the next best answer.
func loadSettings(path string) *auditSettings {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var s auditSettings
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	return &s
}

func saveSettings(path string, s *auditSettings) error {
	b, _ := json.Marshal(s)
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save audit settings: %w", err)
	}
	return nil
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

func lockFile(name string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return nil, fmt.Errorf("create audit lock directory: %w", err)
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrAuditBusy
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, nil
}

func addWatchRule(c *libaudit.AuditClient, root, key string) error {
	wf, err := rule.Build(&rule.FileWatchRule{
		Type:        rule.FileWatchRuleType,
		Path:        root,
		Permissions: []rule.AccessType{rule.WriteAccessType, rule.AttributeChangeAccessType},
		Keys:        []string{key},
	})
	if err != nil {
		return fmt.Errorf("build audit rule for %s: %w", root, err)
	}
	if err := c.AddRule(wf); err != nil && !strings.Contains(err.Error(), "rule exists") {
		return fmt.Errorf("add audit rule for %s: %w", root, err)
	}
	return nil
}

// processRules are the syscall rules of ModeProcess, per architecture: the
// calls that start a process image or give a pid a new identity. fork is
// clone in glibc; clone3 is left out on purpose: glibc uses it for threads
// (which share their process's pid in fanotify events) and for
// posix_spawn, which is followed by an audited execve.
var processRules = []struct{ arch, syscalls string }{
	{"b64", "execve execveat clone fork vfork setuid setreuid setresuid setfsuid"},
	{"b32", "execve execveat clone fork vfork setuid32 setreuid32 setresuid32 setfsuid32"},
}

// addProcessRules adds the ModeProcess rules. Only successful calls are
// recorded: a failed exec leaves the process as it was.
func addProcessRules(c *libaudit.AuditClient, key string) error {
	for i, pr := range processRules {
		wire, err := rule.Build(&rule.SyscallRule{
			Type:   rule.AppendSyscallRuleType,
			List:   "exit",
			Action: "always",
			Filters: []rule.FilterSpec{
				{Type: rule.ValueFilterType, LHS: "arch", Comparator: "=", RHS: pr.arch},
				{Type: rule.ValueFilterType, LHS: "success", Comparator: "=", RHS: "1"},
			},
			Syscalls: strings.Fields(pr.syscalls),
			Keys:     []string{key},
		})
		if err == nil {
			err = c.AddRule(wire)
			if err != nil && strings.Contains(err.Error(), "rule exists") {
				err = nil
			}
		}
		if err != nil {
			if i > 0 {
				// 32-bit processes need IA32 emulation; a kernel
				// without it has none to attribute.
				continue
			}
			return fmt.Errorf("add audit rule for %s process lifecycle: %w", pr.arch, err)
		}
	}
	return nil
}

// deleteKeyRules deletes every audit rule tagged key and returns how many.
func deleteKeyRules(c *libaudit.AuditClient, key string) (int, error) {
	rules, err := keyRules(c, key)
	if err != nil {
		return 0, err
	}
	for _, r := range rules {
		if err := c.DeleteRule(r.wire); err != nil {
			return 0, fmt.Errorf("delete audit rule %q: %w", r.text, err)
		}
	}
	return len(rules), nil
}

type keyRule struct {
	wire []byte
	text string
}

func keyRules(c *libaudit.AuditClient, key string) ([]keyRule, error) {
	all, err := c.GetRules()
	if err != nil {
		return nil, fmt.Errorf("list audit rules: %w", err)
	}
	var out []keyRule
	for _, wf := range all {
		text, err := rule.ToCommandLine(wf, false)
		if err != nil {
			continue // a rule this library cannot decode is not ours
		}
		if hasRuleKey(text, key) {
			out = append(out, keyRule{wire: wf, text: text})
		}
	}
	return out, nil
}

// AuditRules lists the audit rules tagged key, in auditctl syntax. It is
// meant for checks (did a stopped watcher leave rules behind?).
func AuditRules(key string) ([]string, error) {
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		return nil, fmt.Errorf("open audit control socket: %w", err)
	}
	defer c.Close()
	rules, err := keyRules(c, key)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.text
	}
	return out, nil
}

// CleanupAuditRules deletes the audit rules tagged key (left behind by a
// Vigil that was killed) and returns how many it deleted.
func CleanupAuditRules(key string) (int, error) {
	c, err := libaudit.NewAuditClient(nil)
	if err != nil {
		return 0, fmt.Errorf("open audit control socket: %w", err)
	}
	defer c.Close()
	return deleteKeyRules(c, key)
}

// receive only copies messages off the socket; parsing happens elsewhere
// because parsing inline was measured to raise latency 30-fold.
func (a *auditSource) receive() {
	defer a.wg.Done()
	defer close(a.raw)
	for {
		msg, err := a.recv.Receive(false)
		if a.closing.Load() {
			return
		}
		if err != nil {
			switch {
			case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.EAGAIN):
				continue
			case errors.Is(err, syscall.ENOBUFS): // socket buffer overran
				a.dropped.Add(1)
				continue
			}
			a.notify(Notice{Kind: NoticeFailed, Reason: fmt.Sprintf("receive audit records: %v", err)})
			return
		}
		if !a.wanted(msg.Type, msg.Data) {
			continue
		}
		select {
		case a.raw <- rawMsg{typ: msg.Type, data: string(msg.Data)}: // copies the buffer
		default:
			a.dropped.Add(1)
		}
	}
}

// wanted says which messages the parser needs: syscall events, and in
// mode process the barrier echoes (which keep their place in the stream
// because they came through the same queue as records) and LOGIN records
// (a login uid set after exec, which no write record carries here).
// Replies, other user-space and config messages are skipped.
func (a *auditSource) wanted(typ auparse.AuditMessageType, data []byte) bool {
	switch {
	case typ >= auparse.AUDIT_SYSCALL && typ <= auparse.AUDIT_LAST_EVENT:
		return true
	case typ == auparse.AUDIT_USER:
		return a.barrier != nil && bytes.Contains(data, []byte(barrierTag))
	case typ == auparse.AUDIT_LOGIN:
		return a.cfg.mode == ModeProcess
	}
	return false
}

// parse reassembles messages into events and indexes Vigil's records.
func (a *auditSource) parse(re *assembler) {
	defer a.wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case m, ok := <-a.raw:
			if !ok {
				return
			}
			if m.typ == auparse.AUDIT_USER {
				a.barrier.received([]byte(m.data))
				continue
			}
			if m.typ == auparse.AUDIT_LOGIN {
				a.login(m.data)
				continue
			}
			if msg, err := auparse.Parse(m.typ, m.data); err == nil {
				re.push(msg, time.Now())
			}
		case now := <-tick.C:
			re.expire(now, false)
		}
	}
}

// login applies an AUDIT_LOGIN record to the index.
func (a *auditSource) login(data string) {
	msg, err := auparse.Parse(auparse.AUDIT_LOGIN, data)
	if err != nil {
		return
	}
	d, err := msg.Data()
	if err != nil || d["res"] == "0" || d["res"] == "failed" {
		return
	}
	pid, err := strconv.Atoi(d["pid"])
	if err != nil {
		return
	}
	a.idx.login(pid, auditID(d["auid"]), auditID(d["ses"]), msg.Timestamp, a.users)
}

// complete indexes an assembled event; it runs on the parse goroutine.
func (a *auditSource) complete(msgs []*auparse.AuditMessage) {
	r := parseRecord(msgs, a.recordKey)
	if r == nil {
		return
	}
	// Audit has no cgroup: read it now, while the process may still run,
	// but only if it still runs the recorded executable (pid reuse).
	if exe, err := a.proc.exe(r.who.PID); err == nil && exe == r.who.Exe {
		a.proc.readCgroup(r.who.PID, &r.who)
	}
	a.users.fill(&r.who)
	a.idx.add(r)
}

// rawMsg is a received message, copied off the socket buffer.
type rawMsg struct {
	typ  auparse.AuditMessageType
	data string
}

// pollStatus reports losses: the kernel's counter and our own drops.
func (a *auditSource) pollStatus(kernelLost uint32) {
	defer a.wg.Done()
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-tick.C:
		}
		lost := a.dropped.Swap(0)
		a.ctlMu.Lock()
		st, err := a.ctl.GetStatus()
		a.ctlMu.Unlock()
		if err == nil {
			if st.Lost > kernelLost {
				lost += uint64(st.Lost - kernelLost)
			}
			kernelLost = st.Lost
		}
		if lost > 0 {
			a.notify(Notice{Kind: NoticeLost, Lost: lost, Reason: "audit records lost"})
		}
	}
}

// close stops the goroutines and removes Vigil's rules; it restores the
// enabled flag if Vigil turned audit on.
func (a *auditSource) close() error {
	a.closing.Store(true)
	close(a.done)
	// Wake the receiver: the kernel answers a status request on the
	// receiving socket, which unblocks its recvfrom.
	a.recv.GetStatusAsync(false)
	a.wg.Wait()
	return a.release()
}

func (a *auditSource) release() error {
	var errs []error
	if a.recv != nil {
		if err := a.recv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close audit socket: %w", err))
		}
	}
	if a.ctl != nil {
		a.ctlMu.Lock()
		if _, err := deleteKeyRules(a.ctl, a.cfg.key); err != nil {
			errs = append(errs, err)
		}
		if a.restoreWait {
			if err := a.ctl.SetBacklogWaitTime(a.oldWait, libaudit.WaitForReply); err != nil {
				errs = append(errs, fmt.Errorf("restore audit backlog wait time: %w", err))
			}
		}
		if a.restoreLimit {
			if err := a.ctl.SetBacklogLimit(a.oldLimit, libaudit.WaitForReply); err != nil {
				errs = append(errs, fmt.Errorf("restore audit backlog limit: %w", err))
			}
		}
		if a.enabledByUs {
			if err := a.ctl.SetEnabled(false, libaudit.WaitForReply); err != nil {
				errs = append(errs, fmt.Errorf("disable audit: %w", err))
			}
		}
		if err := a.ctl.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close audit control socket: %w", err))
		}
		a.ctlMu.Unlock()
		// Restored: nothing is left to undo. After a failure the file
		// stays, and the next watcher restores from it.
		if len(errs) == 0 {
			if err := os.Remove(a.settingsPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove saved audit settings: %w", err))
			}
		}
	}
	if a.lock != nil {
		a.lock.Close() // releases the flock
	}
	return errors.Join(errs...)
}
