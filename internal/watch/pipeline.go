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

// deliver attributes due paths and sends events to the consumer, in the
// order the coalescer handed them over. Attribution may wait for a late
// audit record (up to the grace period), so up to maxInflight events are
// attributed concurrently: a stream of changes that audit never records
// (say, writes by Vigil itself, which audit exempts as the listener) costs
// each of them the grace period in latency, not the pipeline its
// throughput.
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
	inflight := make(chan *slot, maxInflight)
	go func() {
		defer close(inflight)
		for it := range ready {
			for _, s := range w.prepare(ctx, it) {
				select {
				case inflight <- s:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	for s := range inflight {
		if s.done != nil {
			<-s.done
		}
		if !w.send(ctx, s.ev) {
			for s := range inflight { // let the producer and attributions finish
				if s.done != nil {
					<-s.done
				}
			}
			return
		}
	}
}

// maxInflight bounds the events being attributed at once.
const maxInflight = 1024

// slot is an event on its way out; done is closed once Who is set.
type slot struct {
	ev   Event
	done chan struct{}
}

// prepare turns an item into the events to deliver, starting attribution.
func (w *Watcher) prepare(ctx context.Context, it item) []*slot {
	if it.ev != nil {
		return []*slot{{ev: *it.ev}}
	}
	p := it.p
	ev := Event{Time: p.last, First: p.first, Path: p.path, Source: p.source, Rescan: p.rescan,
		Count: p.count, Ops: p.ops, MultipleWriters: p.multi}
	if p.source == SourceRescan {
		w.stats.rescans.Add(1)
		h := w.health(HealthRescan, 0, "rescan requested for "+p.path)
		h.Health.Roots = []string{p.path}
		ev.Count = 0 // not kernel events
		return []*slot{{ev: h}, {ev: ev}}
	}
	w.stats.events.Add(1)
	w.stats.merged.Add(uint64(p.count))
	s := &slot{ev: ev}
	if w.who != nil {
		s.done = make(chan struct{})
		q := whodata.Query{Path: p.path, PID: p.pid, Since: p.first, Until: p.last}
		go func() {
			defer close(s.done)
			s.ev.Who = w.who.Attribute(ctx, q)
		}()
	}
	return []*slot{s}
}

func (w *Watcher) send(ctx context.Context, e Event) bool {
	select {
	case w.out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}
