package whodata

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// DefaultGrace is how long Attribute waits for an audit record after the
// last kernel event of a change. Audit delivered records with p99 12 ms and
// tails of 80 ms on our machines (docs/watch.md); a record later than this
// is treated as missing.
const DefaultGrace = 250 * time.Millisecond

// Mode says what Vigil asks audit to record, and so how a change is joined
// to the process that made it.
type Mode string

// Attribution modes.
const (
	// ModeProcess audits process lifecycles only: execve, fork/clone and
	// the setuid family. A change is attributed through the pid its file
	// event names, looked up in the identities those records give (or in
	// /proc for processes older than the rules). The writer pays nothing
	// per file operation, and short-lived processes are still identified
	// from their exec or fork record. It needs an event source that names
	// the pid (fanotify).
	ModeProcess Mode = "process"
	// ModeSyscall audits every write and attribute change under the roots
	// (auditctl -w ROOT -p wa): each record names the exact syscall, path
	// and identity, which joins changes by path even when the event source
	// names no pid (inotify), at a cost per file operation paid by every
	// writer (docs/performance.md).
	ModeSyscall Mode = "syscall"
)

// ParseMode checks a mode given on the command line or in a policy.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeProcess, ModeSyscall:
		return m, nil
	}
	return "", fmt.Errorf("unknown attribution mode %q (want %s or %s)", s, ModeProcess, ModeSyscall)
}

// Options configure an Attributor.
type Options struct {
	// Mode selects what audit records; default ModeSyscall, which works
	// with any event source. Watchers whose events carry the writer's pid
	// choose ModeProcess.
	Mode Mode
	// Roots are the trees to install audit watch rules for.
	Roots []string
	// DisableAudit attributes from /proc only (no audit rules, no
	// listener). Short-lived writers then go unattributed.
	DisableAudit bool
	// AuditKey tags the audit rules; default DefaultAuditKey.
	AuditKey string
	// AuditLock is the lock file serialising audit ownership; default
	// DefaultAuditLock.
	AuditLock string
	// Grace is how long to wait for a late audit record; default
	// DefaultGrace.
	Grace time.Duration
	// OnNotice, if set, receives attribution health notices (audit losses,
	// audit failure). It is called from internal goroutines and must not
	// block for long.
	OnNotice func(Notice)
}

// Attributor attaches identities to changes. It is safe for concurrent use.
type Attributor struct {
	idx      *index
	proc     procReader
	users    *userNames
	grace    time.Duration
	mode     Mode
	audit    *auditSource
	noAudit  string // why audit is not used, "" when it is
	failed   atomic.Bool
	onNotice func(Notice)
}

// NewAttributor starts attribution for roots. Problems with audit do not
// fail it: attribution degrades to /proc and AuditStatus says why. It fails
// only on invalid options.
func NewAttributor(ctx context.Context, opts Options) (*Attributor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a := &Attributor{
		idx:      newIndex(ringSize),
		proc:     procReader{root: "/proc"},
		users:    &userNames{},
		grace:    opts.Grace,
		onNotice: opts.OnNotice,
	}
	if a.grace <= 0 {
		a.grace = DefaultGrace
	}
	if a.onNotice == nil {
		a.onNotice = func(Notice) {}
	}
	if opts.DisableAudit {
		a.noAudit = "audit disabled by configuration"
		return a, nil
	}
	if opts.Mode == "" {
		opts.Mode = ModeSyscall
	}
	if _, err := ParseMode(string(opts.Mode)); err != nil {
		return nil, err
	}
	a.mode = opts.Mode
	cfg := auditConfig{mode: opts.Mode, roots: opts.Roots, key: opts.AuditKey, lockPath: opts.AuditLock}
	if cfg.key == "" {
		cfg.key = DefaultAuditKey
	}
	if cfg.lockPath == "" {
		cfg.lockPath = DefaultAuditLock
	}
	if os.Geteuid() != 0 {
		a.noAudit = "audit needs root (CAP_AUDIT_CONTROL)"
		return a, nil
	}
	src, err := openAudit(cfg, a.idx, a.proc, a.users, a.notice)
	if err != nil {
		a.noAudit = fmt.Sprintf("start audit: %v", err)
		return a, nil
	}
	a.audit = src
	return a, nil
}

// notice forwards a notice; a failed audit source stops being waited for.
func (a *Attributor) notice(n Notice) {
	if n.Kind == NoticeFailed {
		a.failed.Store(true)
	}
	a.onNotice(n)
}

// AuditStatus reports whether audit records are used, and if not, why.
func (a *Attributor) AuditStatus() (active bool, reason string) {
	return a.audit != nil, a.noAudit
}

// Attribute returns who made the change q describes. It never returns nil.
//
// In ModeSyscall it waits up to the grace period past q.Until for the audit
// record of the change, then falls back to /proc for q.PID, and otherwise
// returns an explicit unavailable Who. In ModeProcess it looks q.PID up
// among the identities recorded at exec and fork, then in /proc, and only
// then waits for a late exec or fork record.
func (a *Attributor) Attribute(ctx context.Context, q Query) *Who {
	// The kernel does not audit the audit listener's own syscalls, so a
	// change by this process has no record to wait for.
	self := a.audit != nil && a.audit.listener && q.PID == os.Getpid()
	auditing := a.audit != nil && !a.failed.Load() && !self
	if a.mode == ModeProcess {
		return a.attributeProcess(ctx, q, auditing)
	}
	if auditing {
		r, old, err := a.await(ctx, q)
		if err != nil {
			return Unavailable("attribution cancelled")
		}
		if r != nil && (!old || a.stillRuns(r)) {
			return r.who.Clone()
		}
	}
	return a.fromProc(q.PID)
}

// attributeProcess is Attribute in ModeProcess.
func (a *Attributor) attributeProcess(ctx context.Context, q Query, auditing bool) *Who {
	if q.PID == 0 {
		return Unavailable("the event source does not name the process")
	}
	if q.PID == os.Getpid() {
		return a.fromProc(q.PID)
	}
	if auditing {
		synced := a.audit.sync(ctx, q.Until, a.grace)
		if r, _, _ := a.idx.lookup(q, false); r != nil {
			if !synced {
				r = a.settle(ctx, q.PID, r)
			}
			return r.who.Clone()
		}
	}
	// Not recorded: a process that started before the rules (or audit is
	// not in use). Its identity is read once and kept, so a long writer
	// costs one /proc read, not one per file; its next exec or fork
	// record supersedes it.
	// An exiting process still has /proc/PID but no exe: not enough.
	if w, err := a.procWho(q.PID, a.procReason("the process started before vigil's audit rules")); err == nil && w.Exe != "" {
		if auditing {
			a.idx.add(&record{time: time.Now(), who: *w, life: lifeProc})
		}
		return w.Clone()
	}
	if auditing {
		// Exited already: its exec or fork record may be on its way.
		r, _, err := a.await(ctx, q)
		if err != nil {
			return Unavailable("attribution cancelled")
		}
		if r != nil {
			return a.settle(ctx, q.PID, r).who.Clone()
		}
	}
	u := Unavailable(a.procReason("no exec or fork record of the process") + "; the process exited before it could be identified")
	u.PID = q.PID
	return u
}

// settleWait bounds the wait for the exec that usually follows a fork or a
// setuid. Audit delivered records with p99 12 ms here (docs/watch.md);
// waiting longer would only delay a process that forked and never exec'd.
const settleWait = 50 * time.Millisecond

// settle returns the identity pid had at the change, given its newest
// record r. A fork or setuid record is usually followed within
// milliseconds by an exec whose record may still be in flight: if the
// process still runs, /proc says whether it exec'd since; if it is gone,
// wait briefly for a newer record.
func (a *Attributor) settle(ctx context.Context, pid int, r *record) *record {
	if r.life == 0 || r.life.settled() {
		return r
	}
	if exe, err := a.proc.exe(pid); err == nil {
		if exe == r.who.Exe {
			return r
		}
		// It runs another image now: its exec record is due.
	}
	timer := time.NewTimer(settleWait)
	defer timer.Stop()
	for {
		n, w := a.idx.newer(pid, r, true)
		if n != nil {
			return n
		}
		if !a.wait(ctx, Query{PID: pid}, w, timer) {
			return r
		}
	}
}

// wait waits for w, registered for q, until timer fires or ctx ends, and
// reports whether w was woken; if not, it is unregistered.
func (a *Attributor) wait(ctx context.Context, q Query, w *waiter, timer *time.Timer) bool {
	select {
	case <-w.c:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	a.idx.cancelWait(q, w)
	return false
}

// await looks q up, waiting up to the grace period past q.Until for a
// record to arrive. err is set only when ctx ends.
func (a *Attributor) await(ctx context.Context, q Query) (r *record, old bool, err error) {
	deadline := q.Until.Add(a.grace)
	var timer *time.Timer
	for {
		wait := time.Until(deadline)
		r, old, changed := a.idx.lookup(q, wait > 0)
		if r != nil || changed == nil {
			return r, old, nil
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		if !a.wait(ctx, q, changed, timer) {
			return nil, false, ctx.Err()
		}
	}
}

// stillRuns checks that the process of an old record still runs the same
// executable, so that a reused pid is not attributed to a past process.
func (a *Attributor) stillRuns(r *record) bool {
	exe, err := a.proc.exe(r.who.PID)
	return err == nil && exe == r.who.Exe
}

// procReason says why /proc, not audit, identifies a process; why is the
// reason when audit is working.
func (a *Attributor) procReason(why string) string {
	switch {
	case a.failed.Load():
		why = "audit stopped working"
	case a.audit == nil:
		why = "audit not in use (" + a.noAudit + ")"
	}
	return why
}

func (a *Attributor) fromProc(pid int) *Who {
	why := a.procReason("no audit record matched")
	if pid != 0 && pid == os.Getpid() {
		why = "change made by vigil itself, which audit does not record"
	}
	if pid == 0 {
		return Unavailable(why + "; the event source does not name the process")
	}
	w, err := a.procWho(pid, why+"; identity read from /proc after the change")
	if err != nil {
		u := Unavailable(why + "; the process exited before it could be identified")
		u.PID = pid
		return u
	}
	return w
}

// procWho reads pid's identity from /proc, marked as such with reason.
func (a *Attributor) procWho(pid int, reason string) (*Who, error) {
	w, err := a.proc.read(pid)
	if err != nil {
		return nil, err
	}
	w.Attribution = AttributionProc
	w.Reason = reason
	a.users.fill(w)
	return w, nil
}

// Close removes Vigil's audit rules and stops the audit listener.
func (a *Attributor) Close() error {
	if a.audit == nil {
		return nil
	}
	err := a.audit.close()
	a.audit = nil
	if err != nil {
		return fmt.Errorf("stop audit: %w", err)
	}
	return nil
}
