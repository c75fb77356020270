package watch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vigilfim/vigil/internal/watch/fsevent"
	"github.com/vigilfim/vigil/internal/whodata"
)

// item is what the coalescer hands to delivery: a due path or a health
// event, kept in one ordered stream.
type item struct {
	p  *pending
	ev *Event
}

// coalesce merges raw events per path and hands due paths (and health
// events) to delivery in order. It stops reading raw events while it
// holds maxPending paths, so memory stays bounded; the kernel queue takes
// the backlog meanwhile.
func (w *Watcher) coalesce(ctx context.Context, raws <-chan fsevent.Raw, ready chan<- item) {
	c := newCoalescer(w.opts.Window, w.opts.MaxDelay)
	// Due paths are collected on a tick rather than a timer per path:
	// checking the map is cheap and a quarter window adds little delay.
	// CLOSE_WRITE paths skip the tick entirely.
	tick := time.NewTicker(w.opts.Window / 4)
	defer tick.Stop()
	var queue []item
	for {
		in := raws
		if c.len()+len(queue) >= w.opts.maxPending {
			in = nil
		}
		var out chan<- item
		var head item
		if len(queue) > 0 {
			out, head = ready, queue[0]
		}
		select {
		case r, ok := <-in:
			if !ok {
				return
			}
			queue = w.addRaw(c, r, queue)
		case e := <-w.notices:
			queue = append(queue, item{ev: &e})
			if e.Health.Roots != nil {
				w.requestRescan(c, e.Health.Roots, time.Now())
			}
		case now := <-tick.C:
			for _, p := range c.due(now) {
				if p.source == SourceRescan {
					h := w.health(HealthRescan, 0, "rescan requested for "+p.path)
					h.Health.Roots = []string{p.path}
					queue = append(queue, item{ev: &h})
				}
				queue = append(queue, item{p: p})
			}
		case out <- head:
			queue[0] = item{}
			queue = queue[1:]
		case <-ctx.Done():
			// Paths still pending are covered by the full check at the
			// next start, which is why stopping does not wait for them.
			return
		}
	}
}

func (w *Watcher) addRaw(c *coalescer, r fsevent.Raw, queue []item) []item {
	if r.Overflow {
		w.stats.overflows.Add(1)
		roots := w.roots
		if r.Path != "" {
			roots = []string{r.Path}
		}
		e := w.health(HealthOverflow, r.Dropped, "events lost by "+string(w.source)+"; rescanning")
		e.Health.Roots = roots
		w.requestRescan(c, roots, r.Time)
		return append(queue, item{ev: &e})
	}
	if p := c.add(r, w.source); p != nil {
		queue = append(queue, item{p: p})
	}
	return queue
}

// requestRescan queues a subtree rescan of each root through the
// coalescer, so that a storm of overflows asks for one rescan per window.
func (w *Watcher) requestRescan(c *coalescer, roots []string, now time.Time) {
	for _, root := range roots {
		c.add(fsevent.Raw{Time: now, Path: root, Subtree: true}, SourceRescan)
	}
}

// deliver attributes due paths and sends events to the consumer.
// Attribution may wait for a late audit record (up to the grace period),
// so up to maxInflight events are attributed concurrently and each is sent
// as soon as it is ready: a change audit never recorded (a lost record,
// or a write by Vigil itself) costs its own event the grace period, not
// every event behind it. Events for one path keep their order, so a
// caller never checks a path for an older event after a newer one.
func (w *Watcher) deliver(ctx context.Context, ready <-chan item) {
	defer close(w.out)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		msg := "watcher stopped"
		if err := w.Err(); err != nil {
			msg = fmt.Sprintf("watcher failed: %v", err)
		}
		select {
		case w.out <- w.health(HealthStopped, 0, msg):
		default: // nobody reads any more
		}
	}()
	sem := make(chan struct{}, maxInflight)
	var mu sync.Mutex
	last := make(map[string]chan struct{}) // path → done of its latest event in flight
	for it := range ready {
		ev, q, attribute := w.prepare(it)
		if !attribute {
			if !w.send(ctx, ev) {
				return
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		done := make(chan struct{})
		mu.Lock()
		prev := last[ev.Path]
		last[ev.Path] = done
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer func() {
				close(done)
				mu.Lock()
				if last[ev.Path] == done {
					delete(last, ev.Path)
				}
				mu.Unlock()
			}()
			if w.who != nil {
				ev.Who = w.who.Attribute(ctx, q)
			}
			if prev != nil {
				<-prev
			}
			w.send(ctx, ev)
		}()
	}
}

// maxInflight bounds the events being attributed at once.
const maxInflight = 1024

// prepare turns an item into an event, and says whether it is a change to
// attribute (q) or an event to send as is. A rescan is preceded by its
// health event, sent from here.
func (w *Watcher) prepare(it item) (ev Event, q whodata.Query, attribute bool) {
	if it.ev != nil {
		return *it.ev, q, false
	}
	p := it.p
	ev = Event{Time: p.last, First: p.first, Path: p.path, Source: p.source, Rescan: p.rescan,
		Count: p.count, Ops: p.ops, MultipleWriters: p.multi}
	if p.source == SourceRescan {
		w.stats.rescans.Add(1)
		ev.Count = 0 // not kernel events
		return ev, q, false
	}
	w.stats.events.Add(1)
	w.stats.merged.Add(uint64(p.count))
	return ev, whodata.Query{Path: p.path, PID: p.pid, Since: p.first, Until: p.last}, true
}

func (w *Watcher) send(ctx context.Context, e Event) bool {
	select {
	case w.out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}
