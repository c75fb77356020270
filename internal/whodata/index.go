package whodata

import (
	"strconv"
	"sync"
	"time"
)

// perPath bounds the records remembered per path: enough to find the
// writer among a few processes touching one file at once.
const perPath = 4

// index holds the most recent audit records, looked up by path and pid. It
// is a ring: adding a record evicts the oldest and unlinks it from both
// maps, so memory is bounded by the ring size.
type index struct {
	mu     sync.Mutex
	ring   []*record
	next   int
	byPath map[string][]*record // newest first
	byPID  map[int]*record
	// waiters are lookups waiting for a late record, keyed by path and by
	// pid (pidKey); add closes the channels a record matches. Waking only
	// those (not every waiter on every record) matters: at thousands of
	// records per second a broadcast woke a thousand waiters each time.
	waiters map[string][]*waiter
}

// waiter is registered under a path and a pid; closed keeps the second
// wake-up from closing the channel again.
type waiter struct {
	c      chan struct{}
	closed bool
}

func pidKey(pid int) string { return "\x00pid:" + strconv.Itoa(pid) }

func newIndex(size int) *index {
	return &index{
		ring:    make([]*record, size),
		byPath:  make(map[string][]*record),
		byPID:   make(map[int]*record),
		waiters: make(map[string][]*waiter),
	}
}

func (x *index) add(r *record) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old := x.ring[x.next]; old != nil {
		x.unlink(old)
	}
	x.ring[x.next] = r
	x.next = (x.next + 1) % len(x.ring)
	for _, p := range r.paths {
		l := x.byPath[p]
		if len(l) == perPath {
			l = l[:perPath-1]
		}
		x.byPath[p] = append([]*record{r}, l...)
	}
	// Records can complete out of order (a fork's and the child's exec
	// within a millisecond): the newest identity of a pid wins. An
	// identity read from /proc and an audit record of the same pid race
	// (the exec record is in flight while the first change is looked up),
	// and audit wins either way round.
	if cur := x.byPID[r.who.PID]; cur == nil || x.supersedes(r, cur) {
		x.byPID[r.who.PID] = r
	}
	x.wake(pidKey(r.who.PID))
	for _, p := range r.paths {
		x.wake(p)
	}
}

// newer returns the pid's current record when it is not r. Otherwise,
// with wait, it returns a waiter woken when a record for the pid arrives
// (cancelWait it with a Query naming the pid).
func (x *index) newer(pid int, r *record, wait bool) (*record, *waiter) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if cur := x.byPID[pid]; cur != nil && cur != r {
		return cur, nil
	}
	if !wait {
		return nil, nil
	}
	return nil, x.addWaiter(pidKey(pid))
}

// addWaiter registers a waiter woken by the first record for any of keys
// (paths, or pidKey); the caller holds x.mu.
func (x *index) addWaiter(keys ...string) *waiter {
	w := &waiter{c: make(chan struct{})}
	for _, k := range keys {
		x.waiters[k] = append(x.waiters[k], w)
	}
	return w
}

// forkSlack is how far a fork record may trail its child's own records.
// With vfork (Go's os/exec, posix_spawn) the parent's clone returns only
// after the child has exec'd, so the child's exec record comes first and
// the fork record, stamped the same millisecond or later, must not undo
// it. A pid reused by a new fork is far older than this.
const forkSlack = time.Second

func (x *index) supersedes(r, cur *record) bool {
	if r.life == lifeFork && cur.life != 0 && cur.life != lifeProc && r.time.Sub(cur.time) < forkSlack {
		return false
	}
	rProc, curProc := r.life == lifeProc, cur.life == lifeProc
	switch {
	case curProc && !rProc:
		return true
	case rProc && !curProc:
		return false
	}
	return !r.time.Before(cur.time)
}

// login applies a login uid change (an AUDIT_LOGIN record: pam_loginuid
// writing /proc/self/loginuid) to the pid's current identity. A pid with
// no identity yet is left alone: /proc will show the new login uid.
func (x *index) login(pid int, auid, ses *uint32, t time.Time, users *userNames) {
	x.mu.Lock()
	cur := x.byPID[pid]
	x.mu.Unlock()
	if cur == nil || cur.life == 0 {
		return
	}
	w := cur.who.Clone()
	w.AUID, w.Session = auid, ses
	w.LoginUser = ""
	users.fill(w)
	x.add(&record{time: t, who: *w, life: lifeCreds})
}

func (x *index) wake(key string) {
	for _, w := range x.waiters[key] {
		if !w.closed {
			close(w.c)
			w.closed = true
		}
	}
	delete(x.waiters, key)
}

// cancelWait removes a waiter that gave up.
func (x *index) cancelWait(q Query, c *waiter) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, key := range []string{q.Path, pidKey(q.PID)} {
		l := x.waiters[key]
		for i, w := range l {
			if w == c {
				l = append(l[:i:i], l[i+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(x.waiters, key)
		} else {
			x.waiters[key] = l
		}
	}
}

func (x *index) unlink(r *record) {
	for _, p := range r.paths {
		l := x.byPath[p]
		for i, e := range l {
			if e == r {
				l = append(l[:i:i], l[i+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(x.byPath, p)
		} else {
			x.byPath[p] = l
		}
	}
	if x.byPID[r.who.PID] == r {
		delete(x.byPID, r.who.PID)
	}
}

// Query describes a change to attribute.
type Query struct {
	// Path is the absolute path that changed.
	Path string
	// PID is the process the kernel event named, 0 if the backend does not
	// report one (inotify).
	PID int
	// Since and Until bound the kernel events merged into the change.
	Since, Until time.Time
}

// window is how far an audit record's time may lie outside [Since, Until]
// and still be joined by path alone. Audit stamps records at syscall exit
// with millisecond precision; the watcher stamps events when it reads them.
const window = 2 * time.Second

// lookup finds the record for q. When none is found and wait is set, it
// also returns a channel closed when a record for q's path or pid arrives
// (to wait for a late one; cancelWait it when giving up). Preference: the same process on the
// same path (whenever it opened the file: a long-lived writer was recorded
// at open time); without a pid, the newest record on the path within the
// time window; with a pid, the same process within the window under a
// different spelling of the path (symlink, bind mount). A record of a
// different process is never used when the kernel named the process.
//
// old reports that the record lies outside the time window (a long-lived
// writer, or a reused pid): the caller must check the process still runs
// the recorded executable before trusting it.
func (x *index) lookup(q Query, wait bool) (r *record, old bool, changed *waiter) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r, old = x.find(q)
	if r == nil && wait {
		keys := []string{q.Path}
		if q.PID != 0 {
			keys = append(keys, pidKey(q.PID))
		}
		changed = x.addWaiter(keys...)
	}
	return r, old, changed
}

func (x *index) find(q Query) (r *record, old bool) {
	inWindow := func(r *record) bool {
		return !r.time.Before(q.Since.Add(-window)) && !r.time.After(q.Until.Add(window))
	}
	cands := x.byPath[q.Path]
	if q.PID != 0 {
		for _, r := range cands {
			if r.who.PID == q.PID && !r.time.After(q.Until.Add(window)) {
				return r, !inWindow(r)
			}
		}
		r := x.byPID[q.PID]
		switch {
		case r == nil:
		case r.life != 0:
			// An identity holds from its record until the pid's next
			// one; a record much newer than the change belongs to a
			// later process that reused the pid.
			if !r.time.After(q.Until.Add(window)) {
				return r, false
			}
		case inWindow(r):
			return r, false
		}
		return nil, false
	}
	for _, r := range cands {
		if inWindow(r) {
			return r, false
		}
	}
	return nil, false
}
