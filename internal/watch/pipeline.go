package watch

import (
	"context"
	"fmt"
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

// deliver attributes due paths and sends events to the consumer. It runs
// apart from coalescing because attribution may wait for a late audit
// record.
func (w *Watcher) deliver(ctx context.Context, ready <-chan item) {
	defer close(w.out)
	defer func() {
		msg := "watcher stopped"
		if err := w.Err(); err != nil {
			msg = fmt.Sprintf("watcher failed: %v", err)
		}
		select {
		case w.out <- w.health(HealthStopped, 0, msg):
		default: // nobody reads any more
		}
	}()
	for it := range ready {
		if it.ev != nil {
			if !w.send(ctx, *it.ev) {
				return
			}
			continue
		}
		p := it.p
		ev := Event{Time: p.last, First: p.first, Path: p.path, Source: p.source, Rescan: p.rescan,
			Count: p.count, Ops: p.ops, MultipleWriters: p.multi}
		if p.source == SourceRescan {
			w.stats.rescans.Add(1)
			h := w.health(HealthRescan, 0, "rescan requested for "+p.path)
			h.Health.Roots = []string{p.path}
			if !w.send(ctx, h) {
				return
			}
			ev.Count = 0 // not kernel events
		} else {
			w.stats.events.Add(1)
			w.stats.merged.Add(uint64(p.count))
			if w.who != nil {
				ev.Who = w.who.Attribute(ctx, whodata.Query{Path: p.path, PID: p.pid, Since: p.first, Until: p.last})
			}
		}
		if !w.send(ctx, ev) {
			return
		}
	}
}

func (w *Watcher) send(ctx context.Context, e Event) bool {
	select {
	case w.out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}
