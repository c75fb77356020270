package whodata

import (
	"encoding/hex"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"
)

// record is one audit event (SYSCALL + CWD + PATH... + PROCTITLE) reduced
// to who did it, when, and which paths it touched.
type record struct {
	time  time.Time
	who   Who
	paths []string
	// life marks a ModeProcess record: who.PID took the identity in who
	// at time (an exec, a fork whose child is who.PID, or a setuid), and
	// keeps it until its next lifecycle record. 0 for file records.
	life lifecycleKind
}

// lifecycleCalls are the syscalls whose records describe a process rather
// than a file operation (ModeProcess), and what the record means.
var lifecycleCalls = map[string]lifecycleKind{
	"execve": lifeExec, "execveat": lifeExec,
	"clone": lifeFork, "fork": lifeFork, "vfork": lifeFork,
	"setuid": lifeCreds, "setreuid": lifeCreds, "setresuid": lifeCreds, "setfsuid": lifeCreds,
	"setuid32": lifeCreds, "setreuid32": lifeCreds, "setresuid32": lifeCreds, "setfsuid32": lifeCreds,
}

type lifecycleKind int

const (
	lifeExec  lifecycleKind = iota + 1 // the process runs a new image
	lifeFork                           // exit is a new process, same identity as the caller
	lifeCreds                          // the process changed its credentials
	lifeProc                           // identity read from /proc, not from audit
)

// settled reports whether nothing usually follows the record closely: a
// fork is usually followed by an exec, and a setuid by an exec (su, setpriv,
// sudo), whose records may still be on their way when a change is looked
// up.
func (k lifecycleKind) settled() bool { return k == lifeExec || k == lifeProc }

// maxRecordPaths bounds the PATH items kept per record; a rename has four.
const maxRecordPaths = 8

// anyLifecycle as parseRecord's key accepts every exec, fork and setuid
// record whatever rule produced it. The kernel tags a record with the key
// of the first rule that matches, so beside an auditd that audits execve
// itself (CIS benchmarks do) Vigil's own rule never matches; the record
// is just as good.
const anyLifecycle = "\x00any-lifecycle"

// parseRecord reduces the messages of one audit event to a record. It
// returns nil for events that are not file syscalls carrying key: records
// of other rules (auditd's own, beside which Vigil may run) are ignored.
func parseRecord(msgs []*auparse.AuditMessage, key string) *record {
	var (
		r     record
		cwd   string
		names []string
		sys   bool
		life  lifecycleKind
		exit  string
		argv  []string
	)
	for _, m := range msgs {
		switch m.RecordType {
		case auparse.AUDIT_SYSCALL:
			d, err := m.Data()
			if err != nil {
				return nil
			}
			life, exit = lifecycleCalls[d["syscall"]], d["exit"]
			tags, _ := m.Tags()
			if !hasKey(tags, key) && (key != anyLifecycle || life == 0) {
				return nil
			}
			if life != 0 && d["success"] == "no" {
				return nil
			}
			sys = true
			r.time = m.Timestamp
			fillSyscall(d, &r.who)
		case auparse.AUDIT_CWD:
			if d, err := m.Data(); err == nil {
				cwd = d["cwd"]
			}
		case auparse.AUDIT_PATH:
			if d, err := m.Data(); err == nil && len(names) < maxRecordPaths {
				if n := d["name"]; n != "" && n != "(null)" {
					names = append(names, n)
				}
			}
		case auparse.AUDIT_PROCTITLE:
			if argv == nil {
				r.who.Cmdline = proctitle(m.RawData)
			}
		case auparse.AUDIT_EXECVE:
			// The new image's arguments. PROCTITLE is cached per task
			// by the kernel, so after a setuid in the same process it
			// still shows the image before the exec.
			if d, err := m.Data(); err == nil {
				argv = execveArgs(d)
				r.who.Cmdline = argv
			}
		}
	}
	if !sys {
		return nil
	}
	r.who.Attribution = AttributionAudit
	r.who.Cwd = cwd
	if life != 0 {
		r.life = life
		if life == lifeFork {
			// The record is the parent's; the child starts with the
			// parent's identity, image and directory.
			child, err := strconv.Atoi(exit)
			if err != nil || child <= 0 {
				return nil
			}
			r.who.PPID, r.who.PID = r.who.PID, child
		}
		return &r // its PATH items are the executable, not a change
	}
	for _, n := range names {
		if !path.IsAbs(n) {
			if !path.IsAbs(cwd) {
				continue // relative to an unknown directory: not joinable
			}
			n = path.Join(cwd, n)
		}
		n = path.Clean(n)
		if !slices.Contains(r.paths, n) { // a rename names the parent twice
			r.paths = append(r.paths, n)
		}
	}
	return &r
}

// maxArgs bounds the arguments kept from an EXECVE record.
const maxArgs = 64

// execveArgs returns the arguments of an EXECVE record (argc, a0, a1...;
// auparse decodes the hex-encoded ones).
func execveArgs(d map[string]string) []string {
	n, err := strconv.Atoi(d["argc"])
	if err != nil || n <= 0 {
		return nil
	}
	n = min(n, maxArgs)
	argv := make([]string, 0, n)
	for i := range n {
		a, ok := d["a"+strconv.Itoa(i)]
		if !ok {
			break // split across records (a long argument): keep what came
		}
		argv = append(argv, a)
	}
	return argv
}

func hasKey(tags []string, key string) bool {
	for _, t := range tags {
		if t == key {
			return true
		}
	}
	return false
}

func fillSyscall(d map[string]string, w *Who) {
	w.PID, _ = strconv.Atoi(d["pid"])
	w.PPID, _ = strconv.Atoi(d["ppid"])
	w.UID = auditID(d["uid"])
	w.EUID = auditID(d["euid"])
	w.GID = auditID(d["gid"])
	w.AUID = auditID(d["auid"])
	w.Session = auditID(d["ses"])
	w.Exe = d["exe"]
	w.Comm = d["comm"]
	w.TTY = ttyFromAudit(d["tty"])
}

// auditID parses a numeric id field; auparse rewrites unset ids as "unset".
func auditID(s string) *uint32 {
	if s == "" {
		return nil
	}
	if s == "unset" {
		return ptr(UnsetID)
	}
	return parseID(s)
}

// proctitle decodes the argument vector of a PROCTITLE record from its raw
// text. auparse joins the arguments with spaces, which loses where one
// argument ends, so the hex value is decoded here. The kernel truncates
// proctitle at 128 bytes; a quoted (non-hex) value is a single string.
func proctitle(raw string) []string {
	_, v, ok := strings.Cut(raw, "proctitle=")
	if !ok {
		return nil
	}
	if i := strings.IndexByte(v, ' '); i >= 0 {
		v = v[:i]
	}
	if strings.HasPrefix(v, `"`) {
		return []string{strings.Trim(v, `"`)}
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		return nil
	}
	return splitArgv(b)
}
