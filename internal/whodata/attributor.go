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

// Options configure an Attributor.
type Options struct {
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
	cfg := auditConfig{roots: opts.Roots, key: opts.AuditKey, lockPath: opts.AuditLock}
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

// Attribute returns who made the change q describes. It waits up to the
// grace period past q.Until for a matching audit record, then falls back
// to /proc for q.PID, and otherwise returns an explicit unavailable Who.
// It never returns nil.
func (a *Attributor) Attribute(ctx context.Context, q Query) *Who {
	// The kernel does not audit the audit listener's own syscalls, so a
	// change by this process has no record to wait for.
	self := a.audit != nil && a.audit.listener && q.PID == os.Getpid()
	if a.audit != nil && !a.failed.Load() && !self {
		deadline := q.Until.Add(a.grace)
		var timer *time.Timer
		for {
			wait := time.Until(deadline)
			r, old, changed := a.idx.lookup(q, wait > 0)
			if r != nil && (!old || a.stillRuns(r)) {
				return r.who.Clone()
			}
			if changed == nil {
				break
			}
			if timer == nil {
				timer = time.NewTimer(wait)
				defer timer.Stop()
			}
			woken := false
			select {
			case <-changed.c:
				woken = true
			case <-timer.C:
			case <-ctx.Done():
			}
			a.idx.cancelWait(q, changed)
			if ctx.Err() != nil {
				return Unavailable("attribution cancelled")
			}
			if !woken {
				break
			}
		}
	}
	return a.fromProc(q.PID)
}

// stillRuns checks that the process of an old record still runs the same
// executable, so that a reused pid is not attributed to a past process.
func (a *Attributor) stillRuns(r *record) bool {
	exe, err := a.proc.exe(r.who.PID)
	return err == nil && exe == r.who.Exe
}

func (a *Attributor) fromProc(pid int) *Who {
	why := "no audit record matched"
	switch {
	case pid != 0 && pid == os.Getpid():
		why = "change made by vigil itself, which audit does not record"
	case a.failed.Load():
		why = "audit stopped working"
	case a.audit == nil:
		why = "audit not in use (" + a.noAudit + ")"
	}
	if pid == 0 {
		return Unavailable(why + "; the event source does not name the process")
	}
	w, err := a.proc.read(pid)
	if err != nil {
		u := Unavailable(why + "; the process exited before it could be identified")
		u.PID = pid
		return u
	}
	w.Attribution = AttributionProc
	w.Reason = why + "; identity read from /proc after the change"
	a.users.fill(w)
	return w
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
