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
}

// maxRecordPaths bounds the PATH items kept per record; a rename has four.
const maxRecordPaths = 8

// parseRecord reduces the messages of one audit event to a record. It
// returns nil for events that are not file syscalls carrying key: records
// of other rules (auditd's own, beside which Vigil may run) are ignored.
func parseRecord(msgs []*auparse.AuditMessage, key string) *record {
	var (
		r     record
		cwd   string
		names []string
		sys   bool
	)
	for _, m := range msgs {
		switch m.RecordType {
		case auparse.AUDIT_SYSCALL:
			d, err := m.Data()
			if err != nil {
				return nil
			}
			tags, _ := m.Tags()
			if !hasKey(tags, key) {
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
			r.who.Cmdline = proctitle(m.RawData)
		}
	}
	if !sys {
		return nil
	}
	r.who.Attribution = AttributionAudit
	r.who.Cwd = cwd
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
