// Package whodata answers "who made this change?" for file events: it runs
// the Linux audit subsystem as a source of syscall-time identity (uid, auid,
// session, exe, ...), enriches what audit does not record from /proc while
// the process still lives, and joins both to watcher events by path, pid and
// time. When nothing reliable is known it says so explicitly; it never
// guesses. The JSON schema of Who is documented in docs/watch.md.
package whodata

import "strings"

// Attribution says where the identity in a Who came from, and so how far it
// can be trusted.
type Attribution string

// Attribution values, most trustworthy first.
const (
	// AttributionAudit: identity recorded by the kernel's audit subsystem
	// at the time of the syscall that made the change. Fields audit does
	// not carry (cgroup, container id) were read from /proc while the
	// process was alive and its executable still matched.
	AttributionAudit Attribution = "audit"
	// AttributionProc: no audit record matched; the kernel event named the
	// process (pid) and its identity was read from /proc when the event
	// was delivered. Exact for the pid, but the process may have changed
	// credentials or executable between the write and the read.
	AttributionProc Attribution = "proc"
	// AttributionUnavailable: who made the change is not known. Reason
	// says why; PID is set only if the kernel event named a process.
	AttributionUnavailable Attribution = "unavailable"
)

// UnsetID is the kernel's value for an unset login uid or session id (a
// process not descended from a login session). It is reported as is, not
// hidden: "no login user" is a fact, not a missing value.
const UnsetID = ^uint32(0)

// Who identifies the process behind a change. Fields are omitted when not
// known; numeric ids are pointers so that 0 (root) is distinct from absent.
type Who struct {
	Attribution Attribution `json:"attribution"`
	// Reason explains a degraded or unavailable attribution.
	Reason string `json:"reason,omitempty"`

	PID  int     `json:"pid,omitempty"`
	PPID int     `json:"ppid,omitempty"`
	UID  *uint32 `json:"uid,omitempty"`
	EUID *uint32 `json:"euid,omitempty"`
	GID  *uint32 `json:"gid,omitempty"`
	// AUID is the login (audit) uid; it survives su and sudo. UnsetID
	// means the process has no login uid.
	AUID *uint32 `json:"auid,omitempty"`
	// User is the name of UID, LoginUser the name of AUID (absent when
	// AUID is UnsetID or the uid has no name).
	User      string `json:"user,omitempty"`
	LoginUser string `json:"login_user,omitempty"`
	// Session is the audit session id; UnsetID when none.
	Session *uint32 `json:"session,omitempty"`

	Exe     string   `json:"exe,omitempty"`
	Comm    string   `json:"comm,omitempty"`
	Cmdline []string `json:"cmdline,omitempty"`
	Cwd     string   `json:"cwd,omitempty"`
	// TTY is the controlling terminal as ps names it ("pts/0", "tty1").
	TTY    string `json:"tty,omitempty"`
	Cgroup string `json:"cgroup,omitempty"`
	// ContainerID is the 64-hex id of the container (docker, containerd,
	// CRI-O, podman, Kubernetes) found in Cgroup.
	ContainerID string `json:"container_id,omitempty"`
}

// Unavailable returns a Who that says attribution was not possible.
func Unavailable(reason string) *Who {
	return &Who{Attribution: AttributionUnavailable, Reason: reason}
}

// Clone returns a deep copy, so that one audit record can be attached to
// several events without sharing mutable state.
func (w *Who) Clone() *Who {
	if w == nil {
		return nil
	}
	c := *w
	c.UID = clonePtr(w.UID)
	c.EUID = clonePtr(w.EUID)
	c.GID = clonePtr(w.GID)
	c.AUID = clonePtr(w.AUID)
	c.Session = clonePtr(w.Session)
	if w.Cmdline != nil {
		c.Cmdline = append([]string(nil), w.Cmdline...)
	}
	return &c
}

func clonePtr(p *uint32) *uint32 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func ptr(v uint32) *uint32 { return &v }

// ttyFromAudit converts audit's tty field ("pts0", "tty1", "(none)") to the
// ps form used in Who.TTY.
func ttyFromAudit(s string) string {
	switch {
	case s == "" || s == "(none)":
		return ""
	case strings.HasPrefix(s, "pts") && !strings.HasPrefix(s, "pts/"):
		return "pts/" + s[3:]
	}
	return s
}
