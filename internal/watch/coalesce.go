package watch

import (
	"slices"
	"time"

	"github.com/vigilfim/vigil/internal/watch/fsevent"
)

// Coalescing defaults. A burst of writes to one file (an editor saving, a
// package manager unpacking) becomes one check of the final state.
const (
	// DefaultWindow: a path is checked this long after its last event.
	// Long enough to merge the write() calls of one save, short enough
	// that a change is reported well under a second later.
	DefaultWindow = 75 * time.Millisecond
	// DefaultMaxDelay: a path written continuously is still checked at
	// least this often.
	DefaultMaxDelay = time.Second
	// defaultMaxPending bounds the paths held at once (memory); when
	// full, the watcher stops reading until some are due, and the kernel
	// queue (unlimited for fanotify) holds the rest.
	defaultMaxPending = 1 << 16
)

// pending is a path waiting for its window to close.
type pending struct {
	path        string
	rescan      bool
	source      Source
	first, last time.Time
	count       int
	ops         Op
	pid         int
	multi       bool
	// flush: a CLOSE_WRITE was seen, so the writer is done: check now.
	flush bool
}

// coalescer merges events per path. It is pure: time comes in as values.
type coalescer struct {
	window, maxDelay time.Duration
	byPath           map[string]*pending
}

func newCoalescer(window, maxDelay time.Duration) *coalescer {
	return &coalescer{window: window, maxDelay: maxDelay, byPath: make(map[string]*pending)}
}

// add merges r into the pending entry for its path. It returns the entry,
// removed from the coalescer, when it is to be checked at once.
func (c *coalescer) add(r fsevent.Raw, src Source) *pending {
	p := c.byPath[r.Path]
	if p == nil {
		p = &pending{path: r.Path, source: src, first: r.Time, pid: r.PID}
		c.byPath[r.Path] = p
	}
	if r.PID != 0 && p.pid != 0 && r.PID != p.pid {
		p.multi = true
	}
	if r.PID != 0 {
		p.pid = r.PID
	}
	if src == SourceRescan {
		p.source = SourceRescan
	}
	p.last = r.Time
	p.count++
	p.ops |= r.Op
	p.rescan = p.rescan || r.Subtree
	// CLOSE_WRITE ends a writer's session: check at once, so a later
	// session (say, restoring the file) is a separate check. Kernel
	// events that merged before being read cannot be split, which is why
	// Count is reported too.
	if r.Op&fsevent.CloseWrite != 0 {
		p.flush = true
		delete(c.byPath, r.Path)
		return p
	}
	return nil
}

func (c *coalescer) deadline(p *pending) time.Time {
	if p.flush {
		return p.last
	}
	d := p.last.Add(c.window)
	if m := p.first.Add(c.maxDelay); m.Before(d) {
		d = m
	}
	return d
}

// due removes and returns the entries whose deadline is not after now,
// oldest first.
func (c *coalescer) due(now time.Time) []*pending {
	var out []*pending
	for k, p := range c.byPath {
		if !c.deadline(p).After(now) {
			out = append(out, p)
			delete(c.byPath, k)
		}
	}
	slices.SortFunc(out, func(a, b *pending) int {
		if n := a.first.Compare(b.first); n != 0 {
			return n
		}
		return compareStrings(a.path, b.path)
	})
	return out
}

func (c *coalescer) len() int { return len(c.byPath) }

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
