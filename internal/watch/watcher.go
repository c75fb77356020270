package watch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/watch/fanotify"
	"github.com/vigilfim/vigil/internal/watch/fsevent"
	"github.com/vigilfim/vigil/internal/watch/inotify"
	"github.com/vigilfim/vigil/internal/whodata"
)

// BackendKind selects the backend.
type BackendKind int

// Backend choices.
const (
	// BackendAuto uses fanotify, falling back to inotify (with a health
	// event) where fanotify is not permitted or not supported.
	BackendAuto BackendKind = iota
	BackendFanotify
	BackendInotify
)

// Options configure a Watcher. The zero value is the production default.
type Options struct {
	Backend BackendKind
	// Window and MaxDelay tune coalescing (DefaultWindow, DefaultMaxDelay).
	Window, MaxDelay time.Duration
	// Descend, if set, says whether a directory below a root is watched
	// (policy.Policy.Descend): excluded trees cost no inotify watches.
	Descend func(dir string) bool
	// NoWhoData skips attribution entirely (Who stays nil).
	NoWhoData bool
	// Attribution configures who-data; its Roots are set from the roots.
	Attribution whodata.Options

	// LimitedQueue gives fanotify the kernel's default bounded queue
	// instead of an unlimited one: for tests that force an overflow.
	LimitedQueue bool
	// maxPending overrides defaultMaxPending (tests).
	maxPending int
	// refuseFanotify makes fanotify fail as if not permitted (tests).
	refuseFanotify bool
}

// Stats counts the watcher's work.
type Stats struct {
	Events    uint64 // events delivered (excluding health)
	Merged    uint64 // kernel events merged into them
	Overflows uint64 // backend overflows
	AuditLost uint64 // audit records lost
	Rescans   uint64 // root rescans requested
}

// backend is what the watcher needs of a fanotify or inotify backend.
type backend interface {
	Run(ctx context.Context, out chan<- fsevent.Raw) error
	Close() error
}

// Watcher watches roots and delivers Events. Start it before the initial
// full check, so that changes made during that check are not missed.
type Watcher struct {
	roots   []string
	opts    Options
	source  Source
	be      backend
	who     *whodata.Attributor
	whoMode whodata.Mode // set before the attributor starts, read by onNotice
	out     chan Event
	notices chan Event
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error
	closed  sync.Once
	stats   struct{ events, merged, overflows, auditLost, rescans atomic.Uint64 }
}

// New starts watching roots (absolute paths; nested roots are merged). It
// returns once the backend is in place: any change after New returns is
// reported. Events are delivered until ctx is done or Close is called;
// Close must be called either way, since it removes the audit rules.
func New(ctx context.Context, roots []string, opts Options) (*Watcher, error) {
	roots, err := normalizeRoots(roots)
	if err != nil {
		return nil, err
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.maxPending <= 0 {
		opts.maxPending = defaultMaxPending
	}
	w := &Watcher{roots: roots, opts: opts,
		out:     make(chan Event, 1024),
		notices: make(chan Event, 64)}
	var startup []Event
	w.be, w.source, startup, err = openBackend(roots, opts)
	if err != nil {
		return nil, err
	}
	if !opts.NoWhoData {
		ao := opts.Attribution
		ao.Roots = roots
		ao.OnNotice = w.onNotice
		// Process mode joins by the pid in the event; only fanotify
		// names it. It is the default there because it costs writers
		// nothing per file (docs/watch.md).
		if w.source != SourceFanotify && ao.Mode == whodata.ModeProcess {
			startup = append(startup, w.health(HealthAttributionDegraded, 0,
				"who-data mode process needs fanotify events, which name the writer; using mode syscall with "+string(w.source)))
			ao.Mode = whodata.ModeSyscall
		}
		if ao.Mode == "" {
			ao.Mode = whodata.ModeSyscall
			if w.source == SourceFanotify {
				ao.Mode = whodata.ModeProcess
			}
		}
		w.whoMode = ao.Mode
		if w.who, err = whodata.NewAttributor(ctx, ao); err != nil {
			w.be.Close()
			return nil, fmt.Errorf("start attribution: %w", err)
		}
		if ok, why := w.who.AuditStatus(); !ok {
			startup = append(startup, w.health(HealthAttributionDegraded, 0,
				"who-data from /proc only, short-lived writers go unattributed: "+why))
		}
	}
	started := fmt.Sprintf("watching %d roots with %s", len(roots), w.source)
	if w.who == nil {
		started += ", without who-data"
	} else if ok, _ := w.who.AuditStatus(); ok {
		started += ", who-data from audit in mode " + string(w.whoMode)
	} else {
		started += ", who-data from /proc only"
	}
	startup = append([]Event{w.health(HealthStarted, 0, started)}, startup...)
	for _, e := range startup {
		w.out <- e // fits: the channel is empty and larger
	}
	ctx, w.cancel = context.WithCancel(ctx)
	raws := make(chan fsevent.Raw, 4096)
	ready := make(chan item, 1024)
	w.wg.Add(3)
	go func() {
		defer w.wg.Done()
		defer close(raws)
		if err := w.be.Run(ctx, raws); err != nil {
			w.fail(err)
		}
	}()
	go func() {
		defer w.wg.Done()
		defer close(ready)
		w.coalesce(ctx, raws, ready)
	}()
	go func() {
		defer w.wg.Done()
		w.deliver(ctx, ready)
	}()
	return w, nil
}

// openBackend opens the backend opts ask for; in auto mode a fanotify
// failure falls back to inotify, reported by the returned health event.
func openBackend(roots []string, opts Options) (backend, Source, []Event, error) {
	if opts.Backend != BackendInotify {
		fb, err := fanotify.Open(roots, fanotify.Options{LimitedQueue: opts.LimitedQueue, Descend: opts.Descend})
		if err == nil && opts.refuseFanotify {
			fb.Close()
			fb, err = nil, fmt.Errorf("%w: fanotify_init: operation not permitted (simulated)", fanotify.ErrUnsupported)
		}
		if err == nil {
			return fb, SourceFanotify, nil, nil
		}
		if opts.Backend == BackendFanotify || !errors.Is(err, fanotify.ErrUnsupported) {
			return nil, "", nil, fmt.Errorf("start fanotify watch: %w", err)
		}
		ib, ierr := inotify.Open(roots, inotify.Options{Descend: opts.Descend})
		if ierr != nil {
			return nil, "", nil, fmt.Errorf("start inotify watch after fanotify failed (%v): %w", err, ierr)
		}
		return ib, SourceInotify, []Event{{Time: time.Now(), Source: SourceInotify, Health: &Health{
			Kind: HealthFallback, Backend: SourceInotify,
			Message: fmt.Sprintf("fanotify unavailable, using inotify (no process in events): %v", err)}}}, nil
	}
	ib, err := inotify.Open(roots, inotify.Options{Descend: opts.Descend})
	if err != nil {
		return nil, "", nil, fmt.Errorf("start inotify watch: %w", err)
	}
	return ib, SourceInotify, nil, nil
}

// normalizeRoots cleans roots, requires them absolute, sorts them and
// drops roots inside others.
func normalizeRoots(roots []string) ([]string, error) {
	if len(roots) == 0 {
		return nil, errors.New("watch: no roots")
	}
	var out []string
	for _, r := range roots {
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("watch root %q: not absolute", r)
		}
		out = append(out, filepath.Clean(r))
	}
	slices.SortFunc(out, fim.ComparePaths)
	out = slices.Compact(out)
	var merged []string
	for _, r := range out {
		if len(merged) > 0 && fim.IsWithin(r, merged[len(merged)-1]) {
			continue
		}
		merged = append(merged, r)
	}
	return merged, nil
}

// Events returns the event channel. It is closed after Close, after ctx
// is done, or when the backend fails (see Err); the last event is a
// HealthStopped one.
func (w *Watcher) Events() <-chan Event { return w.out }

// Backend returns the backend in use.
func (w *Watcher) Backend() Source { return w.source }

// Roots returns the roots watched, normalised.
func (w *Watcher) Roots() []string { return slices.Clone(w.roots) }

// Err returns the error that stopped the watcher, nil if it was stopped
// by Close or its context.
func (w *Watcher) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *Watcher) fail(err error) {
	w.errMu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.errMu.Unlock()
	w.cancel()
}

// Stats returns the watcher's counters.
func (w *Watcher) Stats() Stats {
	return Stats{Events: w.stats.events.Load(), Merged: w.stats.merged.Load(),
		Overflows: w.stats.overflows.Load(), AuditLost: w.stats.auditLost.Load(), Rescans: w.stats.rescans.Load()}
}

// Close stops watching, removes Vigil's audit rules and closes Events
// after the final HealthStopped event. Pending coalesced paths are
// delivered first if the consumer keeps reading.
func (w *Watcher) Close() error {
	var err error
	w.closed.Do(func() {
		w.cancel()
		w.wg.Wait()
		err = w.be.Close()
		if w.who != nil {
			err = errors.Join(err, w.who.Close())
		}
	})
	return err
}

func (w *Watcher) health(kind HealthKind, dropped uint64, msg string) Event {
	return Event{Time: time.Now(), Source: w.source, Health: &Health{Kind: kind, Backend: w.source, Message: msg, Dropped: dropped}}
}

// onNotice turns an audit notice into events: losing audit records loses
// who-data, not changes. In mode syscall the roots are rescanned all the
// same, so that every change is reported even if its event was what audit
// choked on. In mode process the lost records are exec and fork records
// of the whole host (a busy build machine loses some): rescanning every
// root for them would cost much and find nothing fanotify did not report.
func (w *Watcher) onNotice(n whodata.Notice) {
	e := w.health(HealthAttributionDegraded, n.Lost, n.Reason)
	if n.Kind == whodata.NoticeLost {
		w.stats.auditLost.Add(n.Lost)
		if w.whoMode != whodata.ModeProcess {
			e.Health.Roots = w.Roots()
		}
	}
	select {
	case w.notices <- e:
	default: // a flood of notices: the counters keep the total
	}
}

// String names the backend choice.
func (k BackendKind) String() string {
	switch k {
	case BackendAuto:
		return "auto"
	case BackendFanotify:
		return "fanotify"
	case BackendInotify:
		return "inotify"
	}
	return fmt.Sprintf("BackendKind(%d)", int(k))
}
