package whodata

import (
	"errors"
	"strings"
)

// Defaults for the audit source.
const (
	// DefaultAuditKey tags Vigil's audit rules. It is distinctive so that
	// cleanup never touches rules someone else installed.
	DefaultAuditKey = "vigil-watch"
	// DefaultAuditLock serialises audit ownership between Vigil processes:
	// rules are keyed per host, so two watchers would delete each other's.
	// flock is released by the kernel when a process dies, so a lock that
	// can be taken means any rules with our key are left over from a crash.
	DefaultAuditLock = "/run/vigil/audit.lock"
	// ringSize is the number of audit records kept for joining.
	ringSize = 16384
)

// Sentinel errors of the audit source; callers degrade attribution on them.
var (
	ErrAuditBusy      = errors.New("audit owned by another vigil process")
	ErrAuditImmutable = errors.New("audit configuration is locked (enabled=2)")
)

// NoticeKind classifies a Notice.
type NoticeKind int

// Notice kinds.
const (
	// NoticeLost: audit records were lost (kernel backlog, socket buffer or
	// our own queue); some changes may lack attribution.
	NoticeLost NoticeKind = iota + 1
	// NoticeFailed: the audit source stopped; attribution falls back to
	// /proc from now on.
	NoticeFailed
)

// Notice reports a change in the health of attribution.
type Notice struct {
	Kind   NoticeKind
	Lost   uint64 // records lost since the previous notice
	Reason string
}

type auditConfig struct {
	mode     Mode
	roots    []string
	key      string
	lockPath string
}

// hasRuleKey reports whether an auditctl-style rule carries key.
func hasRuleKey(text, key string) bool {
	f := strings.Fields(text)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-k" && f[i+1] == key {
			return true
		}
	}
	for _, w := range f {
		if w == "key="+key {
			return true
		}
	}
	return false
}
