// Package monitor runs Vigil's real-time watch: a full check against the
// baseline at start (so changes made while Vigil was not running are
// reported), then a targeted re-check of every path the watcher names, each
// change reported with when it was seen, how, and who made it.
//
// The watcher never decides what changed. It names paths; the monitor
// re-stats, re-hashes and diffs them with the same scanner as `vigil check`,
// against its view of the expected state: the baseline, overlaid with what
// the monitor has already reported. So a file changed twice is reported
// twice, each time against the state before that change.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/vigilfim/vigil/internal/baseline"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/integrity"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/record"
	"github.com/vigilfim/vigil/internal/scan"
	"github.com/vigilfim/vigil/internal/watch"
	"github.com/vigilfim/vigil/internal/whodata"
)

// DefaultFullCheck is how often the whole baseline is checked again even
// when the watcher reports nothing: the backstop for anything a kernel
// interface could miss. Daily, as PCI DSS 11.5.2 asks at least weekly.
const DefaultFullCheck = 24 * time.Hour

// Sink receives the monitor's output.
type Sink interface {
	// Change is called for every change, in the order seen.
	Change(o *record.Observed, c *fim.Change) error
	// Problem is called for every entry that could not be examined.
	Problem(path string, err error, source string) error
	// Health is called for health events of the watcher and the monitor.
	Health(t time.Time, h *watch.Health) error
}

// Config configures a Monitor.
type Config struct {
	Baseline *baseline.Index
	Policy   *policy.Policy
	// Watch configures the watcher.
	Watch watch.Options
	// FullCheck is the period of full checks; 0 means DefaultFullCheck,
	// negative disables them.
	FullCheck time.Duration
	// Workers for the scanner; 0 is its default.
	Workers int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Started, if set, is called once the watcher is in place and the
	// startup check has finished: every change after this is reported
	// from the watcher.
	Started func(backend watch.Source)
}

// maxBatch bounds how many events one targeted scan handles.
const maxBatch = 4096

// Monitor is a running watch.
type Monitor struct {
	cfg     Config
	sink    Sink
	overlay map[string]*fim.Entry // path -> state last reported; nil value: absent
	batch   []watch.Event
}

// Run checks everything, then watches until ctx is done. It returns nil
// when ctx is cancelled, or the error that stopped it.
func Run(ctx context.Context, cfg Config, sink Sink) error {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FullCheck == 0 {
		cfg.FullCheck = DefaultFullCheck
	}
	m := &Monitor{cfg: cfg, sink: sink, overlay: map[string]*fim.Entry{}}

	// Start watching before the startup check, so nothing that happens
	// during the check falls between the two.
	wopts := cfg.Watch
	if wopts.Descend == nil {
		wopts.Descend = cfg.Policy.Descend
	}
	w, err := watch.New(ctx, cfg.Policy.Roots(), wopts)
	if err != nil {
		return fmt.Errorf("start watcher: %w", err)
	}
	defer w.Close()

	if err := m.check(ctx, "/", false, string(watch.SourceStartup), startupWho(), 0, time.Time{}); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("startup check: %w", err)
	}
	if cfg.Started != nil {
		cfg.Started(w.Backend())
	}

	var full <-chan time.Time
	if cfg.FullCheck > 0 {
		t := time.NewTicker(cfg.FullCheck)
		defer t.Stop()
		full = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-full:
			if err := m.check(ctx, "/", false, string(watch.SourceRescan), whodata.Unavailable("periodic full check: the change was not seen by the watcher"), 0, time.Time{}); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		case ev, ok := <-w.Events():
			if !ok {
				if err := w.Err(); err != nil {
					return fmt.Errorf("watcher stopped: %w", err)
				}
				return nil
			}
			// Take whatever else is already waiting, so a burst costs one
			// scan rather than one per event.
			batch := append(m.batch[:0], ev)
		more:
			for len(batch) < maxBatch {
				select {
				case ev, ok := <-w.Events():
					if !ok {
						break more
					}
					batch = append(batch, ev)
				default:
					break more
				}
			}
			m.batch = batch
			if err := m.handleBatch(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return nil // interrupted mid-check: a normal stop
				}
				return err
			}
		}
	}
}

func startupWho() *whodata.Who {
	return whodata.Unavailable("changed while vigil was not watching; found by the startup check")
}

// pending is one path of a batch to examine, with what the watcher said.
type pending struct {
	path    string
	subtree bool // rescan everything below path
	source  string
	who     *whodata.Who
	events  int
	seen    time.Time
	found   bool
}

func eventWho(ev watch.Event) *whodata.Who {
	if ev.Who != nil {
		return ev.Who
	}
	if ev.Source == watch.SourceRescan {
		return whodata.Unavailable("events were lost; the change was found by a rescan")
	}
	return whodata.Unavailable("no attribution for this event")
}

// handleBatch examines the paths of a batch of events with one scan: the
// paths themselves, and the subtrees of rescans. Directories named without
// a rescan are examined alone (their own attributes) in scans of their own,
// since a scan limited to a directory walks everything below it.
func (m *Monitor) handleBatch(ctx context.Context, batch []watch.Event) error {
	byPath := map[string]*pending{}
	var order []*pending
	for _, ev := range batch {
		if ev.Health != nil {
			if err := m.sink.Health(ev.Time, ev.Health); err != nil {
				return err
			}
			continue
		}
		p := byPath[ev.Path]
		if p == nil {
			p = &pending{path: ev.Path}
			byPath[ev.Path] = p
			order = append(order, p)
		}
		// Later events for the same path supersede earlier ones, but a
		// rescan request sticks and counts add up.
		p.subtree = p.subtree || ev.Rescan
		p.source, p.who, p.seen = string(ev.Source), eventWho(ev), ev.Time
		p.events += ev.Count
	}
	if len(order) == 0 {
		return nil
	}
	sortPending(order)
	// A path inside a subtree being rescanned is covered by that rescan.
	var limit []*pending
	var dirs []*pending
	for _, p := range order {
		if n := len(limit); n > 0 && limit[n-1].subtree && fim.IsWithin(p.path, limit[n-1].path) {
			continue
		}
		if !p.subtree {
			if cur := m.current(p.path); cur != nil && cur.Type == fim.TypeDir {
				dirs = append(dirs, p)
				continue
			}
		}
		limit = append(limit, p)
	}
	for _, p := range dirs {
		if err := m.check(ctx, p.path, true, p.source, p.who, p.events, p.seen); err != nil {
			return err
		}
	}
	if len(limit) == 0 {
		return nil
	}
	paths := make([]string, len(limit))
	olds := make([]scan.Old, len(limit))
	for i, p := range limit {
		paths[i] = p.path
		olds[i] = m.view(p.path, !p.subtree)
	}
	owner := func(path string) *pending {
		// limit is sorted and its subtrees disjoint, so only the last
		// entry at or before path can contain it.
		i, ok := slices.BinarySearchFunc(limit, path, func(p *pending, t string) int { return fim.ComparePaths(p.path, t) })
		if ok {
			return limit[i]
		}
		if i > 0 && fim.IsWithin(path, limit[i-1].path) {
			return limit[i-1]
		}
		return nil
	}
	_, err := scan.Run(ctx, m.cfg.Policy, &concatOld{parts: olds}, scan.Options{Workers: m.cfg.Workers, Limit: paths}, func(it *scan.Item) error {
		if it.Status == scan.OutOfScope {
			return nil
		}
		p := owner(it.Path)
		if p == nil {
			return nil
		}
		if it.Status == scan.Failed {
			return m.sink.Problem(it.Path, it.Err, p.source)
		}
		c, changed := integrity.ItemChange(it)
		if !changed {
			return nil
		}
		if it.Path == p.path {
			p.found = true
		}
		m.remember(&c)
		rule := it.Rule
		if rule == nil {
			rule = m.cfg.Policy.Lookup(it.Path)
		}
		return m.emit(&c, rule, p.source, p.who, p.events, p.seen)
	})
	if err != nil {
		return fmt.Errorf("check %d paths: %w", len(paths), err)
	}
	for _, p := range limit {
		if !p.found && !p.subtree && p.events > 0 {
			// The kernel saw activity but the path is as it was: it
			// changed and was restored within the coalescing window.
			if err := m.transient(p.path, p.source, p.who, p.events, p.seen); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortPending(ps []*pending) {
	slices.SortFunc(ps, func(a, b *pending) int { return fim.ComparePaths(a.path, b.path) })
}

// concatOld yields the old sides of disjoint, sorted parts one after the
// other: together they are in walk order.
type concatOld struct {
	parts []scan.Old
}

func (c *concatOld) Next() (*fim.Entry, uint32, error) {
	for len(c.parts) > 0 {
		e, tag, err := c.parts[0].Next()
		if err == io.EOF {
			c.parts = c.parts[1:]
			continue
		}
		return e, tag, err
	}
	return nil, 0, io.EOF
}

// check examines path (alone when shallow, else its whole subtree) against
// the view and reports what differs.
func (m *Monitor) check(ctx context.Context, path string, shallow bool, source string, who *whodata.Who, events int, seen time.Time) error {
	pol := m.cfg.Policy
	var limit []string
	if shallow {
		p, err := pol.Only(path)
		if err != nil {
			return fmt.Errorf("check %s: %w", path, err)
		}
		if p == nil {
			return nil // not monitored (excluded, or outside every rule)
		}
		pol = p
	} else if path != "/" {
		limit = []string{path}
	}
	old := m.view(path, shallow)
	found := 0
	_, err := scan.Run(ctx, pol, old, scan.Options{Workers: m.cfg.Workers, Limit: limit}, func(it *scan.Item) error {
		switch it.Status {
		case scan.OutOfScope:
			return nil
		case scan.Failed:
			return m.sink.Problem(it.Path, it.Err, source)
		}
		c, changed := integrity.ItemChange(it)
		if !changed {
			return nil
		}
		found++
		m.remember(&c)
		rule := it.Rule
		if rule == nil {
			rule = m.cfg.Policy.Lookup(it.Path)
		}
		return m.emit(&c, rule, source, who, events, seen)
	})
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if found == 0 && events > 0 && shallow {
		// The kernel saw activity but the path is as it was: it changed
		// and was restored within the coalescing window. Say so.
		return m.transient(path, source, who, events, seen)
	}
	return nil
}

func (m *Monitor) emit(c *fim.Change, rule *policy.Rule, source string, who *whodata.Who, events int, seen time.Time) error {
	if seen.IsZero() {
		seen = m.cfg.Now()
	}
	o := &record.Observed{
		Change: record.New(c, rule),
		Time:   seen.UTC().Format(time.RFC3339Nano),
		Source: source,
		Who:    who,
		Events: events,
	}
	return m.sink.Change(o, c)
}

func (m *Monitor) transient(path, source string, who *whodata.Who, events int, seen time.Time) error {
	rule := m.cfg.Policy.Lookup(path)
	if rule == nil {
		return nil
	}
	cur := m.current(path)
	c := fim.Change{Path: path, Kind: fim.Modified, Old: cur, New: cur}
	if seen.IsZero() {
		seen = m.cfg.Now()
	}
	r := record.New(&c, rule)
	r.Type = record.Transient
	o := &record.Observed{Change: r, Time: seen.UTC().Format(time.RFC3339Nano), Source: source, Who: who, Events: events}
	return m.sink.Change(o, &c)
}

// remember records the reported state so the next change to the path is
// compared with it rather than with the baseline.
func (m *Monitor) remember(c *fim.Change) {
	m.overlay[c.Path] = c.New // nil for removed
}

// current returns the expected state of path: the last reported one, or
// the baseline's.
func (m *Monitor) current(path string) *fim.Entry {
	if e, ok := m.overlay[path]; ok {
		return e
	}
	e, _, err := m.cfg.Baseline.Lookup(path)
	if err != nil {
		return nil
	}
	return e
}

// view returns the old side for a check of path: the baseline's entries
// (one, or the subtree) with the overlay applied.
func (m *Monitor) view(path string, shallow bool) scan.Old {
	var base scan.Old
	if shallow {
		e, tag, err := m.cfg.Baseline.Lookup(path)
		switch {
		case err == nil:
			base = &sliceOld{es: []*fim.Entry{e}, tags: []uint32{tag}}
		case errors.Is(err, baseline.ErrNotFound):
			base = &sliceOld{}
		default:
			base = &errOld{err}
		}
	} else {
		base = m.cfg.Baseline.Subtree(path)
	}
	var over []string
	if shallow {
		if _, ok := m.overlay[path]; ok {
			over = []string{path}
		}
	} else {
		// Rescans are rare; a lookup per event must not cost a pass over
		// every change reported so far.
		for p := range m.overlay {
			if fim.IsWithin(p, path) {
				over = append(over, p)
			}
		}
	}
	if len(over) == 0 {
		return base
	}
	return newOverlayOld(base, over, m.overlay)
}

func sortPaths(p []string) { slices.SortFunc(p, fim.ComparePaths) }

type sliceOld struct {
	es   []*fim.Entry
	tags []uint32
}

func (s *sliceOld) Next() (*fim.Entry, uint32, error) {
	if len(s.es) == 0 {
		return nil, 0, io.EOF
	}
	e, t := s.es[0], s.tags[0]
	s.es, s.tags = s.es[1:], s.tags[1:]
	return e, t, nil
}

type errOld struct{ err error }

func (e *errOld) Next() (*fim.Entry, uint32, error) { return nil, 0, e.err }

// newOverlayOld snapshots the overlay for keys: the scanner reads the old
// side from its own goroutine while reported changes update the overlay.
func newOverlayOld(base scan.Old, keys []string, overlay map[string]*fim.Entry) *overlayOld {
	sortPaths(keys)
	vals := make([]*fim.Entry, len(keys))
	for i, k := range keys {
		vals[i] = overlay[k]
	}
	return &overlayOld{base: base, keys: keys, vals: vals}
}

// overlayOld merges the baseline's entries with the overlay: an overlaid
// path replaces the baseline's entry, or removes it (nil), or adds one.
type overlayOld struct {
	base    scan.Old
	keys    []string
	vals    []*fim.Entry // the overlay's entries for keys; nil: absent
	next    *fim.Entry
	nextTag uint32
	baseEOF bool
}

func (o *overlayOld) Next() (*fim.Entry, uint32, error) {
	for {
		if o.next == nil && !o.baseEOF {
			e, tag, err := o.base.Next()
			if err == io.EOF {
				o.baseEOF = true
			} else if err != nil {
				return nil, 0, err
			} else {
				o.next, o.nextTag = e, tag
			}
		}
		switch {
		case len(o.keys) > 0 && (o.next == nil || fim.ComparePaths(o.keys[0], o.next.Path) <= 0):
			k, v := o.keys[0], o.vals[0]
			o.keys, o.vals = o.keys[1:], o.vals[1:]
			tag := uint32(0)
			if o.next != nil && o.next.Path == k {
				tag = o.nextTag
				o.next = nil // replaced
			}
			if v != nil {
				return v, tag, nil
			}
			// Removed since the baseline: skip it.
		case o.next != nil:
			e := o.next
			o.next = nil
			return e, o.nextTag, nil
		default:
			return nil, 0, io.EOF
		}
	}
}
