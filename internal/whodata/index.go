package whodata

import (
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
	// changed is closed and replaced whenever a record is added, waking
	// lookups that wait for a late record.
	changed chan struct{}
}

func newIndex(size int) *index {
	return &index{
		ring:    make([]*record, size),
		byPath:  make(map[string][]*record),
		byPID:   make(map[int]*record),
		changed: make(chan struct{}),
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
	x.byPID[r.who.PID] = r
	close(x.changed)
	x.changed = make(chan struct{})
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

// lookup finds the record for q, and a channel closed when a newer record
// arrives (to wait for a late one). Preference: the same process on the
// same path (whenever it opened the file: a long-lived writer was recorded
// at open time); without a pid, the newest record on the path within the
// time window; with a pid, the same process within the window under a
// different spelling of the path (symlink, bind mount). A record of a
// different process is never used when the kernel named the process.
//
// old reports that the record lies outside the time window (a long-lived
// writer, or a reused pid): the caller must check the process still runs
// the recorded executable before trusting it.
func (x *index) lookup(q Query) (r *record, old bool, changed <-chan struct{}) {
	x.mu.Lock()
	defer x.mu.Unlock()
	inWindow := func(r *record) bool {
		return !r.time.Before(q.Since.Add(-window)) && !r.time.After(q.Until.Add(window))
	}
	cands := x.byPath[q.Path]
	if q.PID != 0 {
		for _, r := range cands {
			if r.who.PID == q.PID && !r.time.After(q.Until.Add(window)) {
				return r, !inWindow(r), x.changed
			}
		}
		if r := x.byPID[q.PID]; r != nil && inWindow(r) {
			return r, false, x.changed
		}
		return nil, false, x.changed
	}
	for _, r := range cands {
		if inWindow(r) {
			return r, false, x.changed
		}
	}
	return nil, false, x.changed
}
