//go:build linux

package whodata

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"
)

// barrierTag marks the user messages Vigil sends itself through audit.
const barrierTag = "vigil-audit-barrier "

// barrier tells when every audit record queued before a moment has been
// indexed. The kernel queues all audit records, user messages included, in
// one FIFO that its kauditd thread sends out in order. A process's exec or
// fork record is queued at that syscall's exit, before the process can
// change a file, so once a user message sent after a file event comes back,
// the records of the process behind that event are in the index. One
// message in flight serves every lookup waiting on an earlier moment.
type barrier struct {
	send func(text string) error

	mu       sync.Mutex
	sentTime time.Time     // when the newest barrier was sent
	doneTime time.Time     // send time of the newest barrier received
	changed  chan struct{} // closed (and replaced) when doneTime advances
}

func newBarrier(send func(string) error) *barrier {
	return &barrier{send: send, changed: make(chan struct{})}
}

// barrierResend is how long a barrier may stay unanswered before another
// is sent: with the kernel's backlog full (and Vigil's wait time 0) the
// kernel drops user messages like any record. Audit delivered records with
// p99 12 ms here.
const barrierResend = 25 * time.Millisecond

// sync waits until the records queued before t are indexed, or timeout
// passes. It reports whether they are.
func (b *barrier) sync(ctx context.Context, t time.Time, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var resend *time.Ticker
	for {
		b.mu.Lock()
		if !b.doneTime.Before(t) {
			b.mu.Unlock()
			return true
		}
		if now := time.Now(); b.sentTime.Before(t) || now.Sub(b.sentTime) > barrierResend {
			if err := b.send(barrierTag + strconv.FormatInt(now.UnixNano(), 10)); err != nil {
				b.mu.Unlock()
				return false
			}
			b.sentTime = now
		}
		c := b.changed
		b.mu.Unlock()
		if resend == nil {
			resend = time.NewTicker(barrierResend)
			defer resend.Stop()
		}
		select {
		case <-c:
		case <-resend.C:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// received handles a user message off the audit stream (on the parse
// goroutine, in stream order). It reports whether it was a barrier.
func (b *barrier) received(data []byte) bool {
	i := bytes.Index(data, []byte(barrierTag))
	if i < 0 {
		return false
	}
	v := data[i+len(barrierTag):]
	if j := bytes.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
		v = v[:j]
	}
	ns, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return true // ours, but mangled: the next one will do
	}
	t := time.Unix(0, ns)
	b.mu.Lock()
	if t.After(b.doneTime) {
		b.doneTime = t
		close(b.changed)
		b.changed = make(chan struct{})
	}
	b.mu.Unlock()
	return true
}

// sync waits for the barrier, if this source has one, until the records
// queued before t are indexed or timeout passes; it reports whether they are.
func (a *auditSource) sync(ctx context.Context, t time.Time, timeout time.Duration) bool {
	return a.barrier != nil && a.barrier.sync(ctx, t, timeout)
}

// sendUser sends text as an AUDIT_USER message on the control socket. The
// kernel stamps it with our pid and credentials and queues it behind every
// record already queued.
func (a *auditSource) sendUser(text string) error {
	a.ctlMu.Lock()
	defer a.ctlMu.Unlock()
	_, err := a.ctl.Netlink.Send(syscall.NetlinkMessage{
		Header: syscall.NlMsghdr{Type: uint16(auparse.AUDIT_USER), Flags: syscall.NLM_F_REQUEST},
		Data:   append([]byte(text), 0),
	})
	if err != nil {
		return fmt.Errorf("send audit barrier: %w", err)
	}
	return nil
}
