package whodata

import (
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"
)

// assembler groups the messages of audit events by sequence number and
// hands each event on as soon as its EOE arrives. Unlike libaudit's
// Reassembler it never holds a complete event behind an earlier incomplete
// one: the barrier relies on every event completed before it being
// indexed by the time it is seen, and an unrelated record without EOE
// (SECCOMP, say) would otherwise hold back everything behind it for the
// whole timeout.
type assembler struct {
	timeout time.Duration
	events  map[uint32]*partial
	done    func([]*auparse.AuditMessage)
}

type partial struct {
	msgs    []*auparse.AuditMessage
	expires time.Time
}

// maxPartial bounds the events being assembled; the oldest are dropped
// beyond it (each costs who-data for one syscall at most).
const maxPartial = 1024

// eventTypes are the record types of the syscall events Vigil reads.
func eventType(t auparse.AuditMessageType) bool {
	switch t {
	case auparse.AUDIT_SYSCALL, auparse.AUDIT_CWD, auparse.AUDIT_PATH, auparse.AUDIT_EXECVE,
		auparse.AUDIT_PROCTITLE, auparse.AUDIT_EOE:
		return true
	}
	return false
}

func newAssembler(timeout time.Duration, done func([]*auparse.AuditMessage)) *assembler {
	return &assembler{timeout: timeout, events: make(map[uint32]*partial), done: done}
}

// push adds a message; now stamps when an unfinished event expires.
func (s *assembler) push(m *auparse.AuditMessage, now time.Time) {
	if !eventType(m.RecordType) {
		return
	}
	p := s.events[m.Sequence]
	if m.RecordType == auparse.AUDIT_EOE {
		if p != nil {
			delete(s.events, m.Sequence)
			s.done(p.msgs)
		}
		return
	}
	if p == nil {
		if len(s.events) >= maxPartial {
			s.expire(time.Time{}, true)
		}
		p = &partial{expires: now.Add(s.timeout)}
		s.events[m.Sequence] = p
	}
	p.msgs = append(p.msgs, m)
}

// expire hands on events whose EOE never came (the kernel sends one for
// every multi-record event, but a lost message loses it); with oldest it
// hands on the oldest event instead.
func (s *assembler) expire(now time.Time, oldest bool) {
	if oldest {
		var seq uint32
		var first *partial
		for k, p := range s.events {
			if first == nil || p.expires.Before(first.expires) {
				seq, first = k, p
			}
		}
		if first != nil {
			delete(s.events, seq)
			s.done(first.msgs)
		}
		return
	}
	for k, p := range s.events {
		if now.After(p.expires) {
			delete(s.events, k)
			s.done(p.msgs)
		}
	}
}
