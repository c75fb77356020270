package scan

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/policy"
)

// Old is the baseline side of the merge: entries in fim.ComparePaths order,
// then io.EOF. The tag is opaque to the scan and handed back in
// Item.OldTag (a baseline can use it for a row id).
type Old interface {
	Next() (e *fim.Entry, tag uint32, err error)
}

// Totals may be implemented by an Old that knows its size up front; Run
// then reports the totals in Progress so a caller can show an ETA.
type Totals interface {
	Totals() (entries, bytes int64)
}

// ErrOldOrder means the baseline's entries are not in strictly increasing
// fim.ComparePaths order, so it can't be merged with the walk.
var ErrOldOrder = errors.New("baseline entries out of order")

// Status says what happened to one path.
type Status uint8

// Statuses of an Item.
const (
	// Scanned: the entry was read; New is set, Old too if the baseline
	// had the path.
	Scanned Status = iota + 1
	// Missing: Old is set and the path is in scope but not on disk.
	Missing
	// OutOfScope: Old is set but the path was not walked: it lies outside
	// Options.Limit, or the policy no longer covers it (excluded, too
	// deep, on another file system). A caller rewriting a baseline copies
	// these through unchanged.
	OutOfScope
	// Failed: the entry could not be read completely. Err is set; New is
	// nil or partial; Old is set if the baseline had the path.
	Failed
)

var statusNames = [...]string{"", "scanned", "missing", "out-of-scope", "failed"}

// String returns the status's name.
func (s Status) String() string {
	if int(s) < len(statusNames) && s != 0 {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", s)
}

// Item is the outcome for one path.
type Item struct {
	Path   string
	Status Status
	Old    *fim.Entry
	OldTag uint32
	New    *fim.Entry
	// Prefix is, for growing files, the digest of New's first Old.Size
	// bytes made with Old's algorithm: pass it to fim.Compare.
	Prefix fim.Digest
	// Rule is the rule governing the path; nil for OutOfScope items, and
	// for a Failed directory that no rule governs but that was read to
	// reach a nested rule.
	Rule *policy.Rule
	Err  error
	// Rehashed is true when content was read in this scan rather than
	// taken from Old because the fingerprint was unchanged.
	Rehashed bool
}

// Options tune a scan. The zero value scans everything the policy names
// with the default number of workers.
type Options struct {
	// Workers is the number of goroutines that stat and hash files; 0
	// means max(4, 2*GOMAXPROCS), because hashing overlaps I/O waits.
	Workers int
	// Full re-hashes every file even when its fingerprint is unchanged.
	Full bool
	// Limit restricts the walk to these absolute paths and what lies
	// below them; baseline entries elsewhere come out as OutOfScope.
	Limit []string
	// Progress, when set, is called from Run's goroutine at most every
	// ProgressInterval while the scan runs, and once at the end.
	Progress func(Progress)
}

// ProgressInterval is the least time between two Progress calls.
const ProgressInterval = 250 * time.Millisecond

// Progress is a snapshot of a running scan.
type Progress struct {
	// Entries is the number of items delivered so far.
	Entries int64
	// Files and Bytes count the regular files delivered and their sizes.
	Files, Bytes int64
	// BytesHashed counts content read so far, including files in flight.
	BytesHashed int64
	Elapsed     time.Duration
	// OldEntries and OldBytes are the baseline's totals when it implements
	// Totals (0 otherwise): Entries/OldEntries estimates completion.
	OldEntries, OldBytes int64
}

// Stats summarise a finished (or aborted) scan.
type Stats struct {
	// Items by status.
	Scanned, Missing, OutOfScope, Failed int64
	// Files, Dirs and Bytes count the scanned regular files, directories
	// and the files' total size.
	Files, Dirs, Bytes int64
	// Hashed files had their content read; Reused ones took the digest
	// from the baseline because the fingerprint was unchanged.
	Hashed, Reused int64
	BytesHashed    int64
	Elapsed        time.Duration
}

// Sizes of the pipeline's buffers. The ordered window bounds memory and
// open directory descriptors (each slot may pin its parent directory):
// 2048 slots keep every worker busy behind one slow, large file, and are
// cut to a quarter of the descriptor limit where that is lower.
const (
	maxWindow = 2048
	minWindow = 64
	oldBatch  = 256
	jobsDepth = 256
)

// Run scans the trees pol names, merges them with old (which may be nil)
// and calls fn for every item in fim.ComparePaths order, from the calling
// goroutine; fn may keep the items. It returns when the scan is complete,
// ctx is cancelled (ctx.Err()), fn returns an error (that error), or the
// baseline can't be read or is out of order; see the package documentation
// for which problems stop a scan and which become Failed items.
func Run(ctx context.Context, pol *policy.Policy, old Old, opt Options, fn func(*Item) error) (Stats, error) {
	start := time.Now()
	if pol == nil {
		return Stats{}, errors.New("run scan: nil policy")
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	limits, err := cleanLimits(opt.Limit)
	if err != nil {
		return Stats{}, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	olds := make(chan oldChunk, 4)
	queue := make(chan *slot, queueWindow())
	jobs := make(chan *slot, jobsDepth)
	var hashed atomic.Int64

	if old != nil {
		g.Go(func() error { return readOld(gctx, old, olds) })
	} else {
		close(olds)
	}
	w := &walker{
		ctx:      gctx,
		pol:      pol,
		limits:   limits,
		old:      oldCursor{ctx: gctx, ch: olds},
		queue:    queue,
		jobs:     jobs,
		rootDevs: map[*policy.Rule]uint64{},
		full:     opt.Full,
	}
	g.Go(func() error {
		defer close(queue)
		defer close(jobs)
		return w.run()
	})
	for range workers {
		g.Go(func() error {
			work(gctx, jobs, opt.Full, &hashed)
			return nil
		})
	}

	e := emitter{fn: fn, progress: opt.Progress, start: start, hashed: &hashed}
	if t, ok := old.(Totals); ok && old != nil {
		e.p.OldEntries, e.p.OldBytes = t.Totals()
	}
	emitErr := e.run(gctx, queue)
	cancel()
	werr := g.Wait()
	// Everything has stopped: close the directories still pinned by jobs
	// that no worker took.
	for s := range jobs {
		s.dir.release()
	}
	for range queue {
	}

	e.stats.BytesHashed = hashed.Load()
	e.stats.Elapsed = time.Since(start)
	if e.progress != nil {
		e.report()
	}
	switch {
	case emitErr != nil && !isCancel(emitErr):
		return e.stats, emitErr // fn failed
	case werr != nil && !isCancel(werr):
		return e.stats, werr
	}
	return e.stats, ctx.Err()
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func cleanLimits(limits []string) ([]string, error) {
	out := make([]string, 0, len(limits))
	for _, l := range limits {
		if !filepath.IsAbs(l) {
			return nil, fmt.Errorf("limit scan to %q: not an absolute path", l)
		}
		out = append(out, filepath.Clean(l))
	}
	slices.SortFunc(out, fim.ComparePaths)
	// Drop limits inside another.
	kept := out[:0]
	for _, l := range out {
		if len(kept) > 0 && fim.IsWithin(l, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, l)
	}
	return kept, nil
}

// emitter delivers finished slots in order and keeps the statistics.
type emitter struct {
	fn       func(*Item) error
	progress func(Progress)
	start    time.Time
	hashed   *atomic.Int64
	p        Progress
	stats    Stats
}

func (e *emitter) run(ctx context.Context, queue <-chan *slot) error {
	var tick <-chan time.Time
	if e.progress != nil {
		t := time.NewTicker(ProgressInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var s *slot
		var ok bool
		select {
		case s, ok = <-queue:
			if !ok {
				return nil
			}
		case <-tick:
			e.report()
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		if s.done != nil {
		wait:
			for {
				select {
				case <-s.done:
					break wait
				case <-tick:
					e.report()
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if s.drop {
			continue
		}
		e.count(&s.item)
		if err := e.fn(&s.item); err != nil {
			return err
		}
	}
}

func (e *emitter) count(it *Item) {
	e.p.Entries++
	switch it.Status {
	case Scanned:
		e.stats.Scanned++
	case Missing:
		e.stats.Missing++
	case OutOfScope:
		e.stats.OutOfScope++
	case Failed:
		e.stats.Failed++
	}
	if it.Status == Scanned && it.New != nil {
		switch it.New.Type {
		case fim.TypeFile:
			e.p.Files++
			e.p.Bytes += it.New.Size
			if it.Rehashed {
				e.stats.Hashed++
			} else if !it.New.Content.IsZero() {
				e.stats.Reused++
			}
		case fim.TypeDir:
			e.stats.Dirs++
		}
	}
	e.stats.Files, e.stats.Bytes = e.p.Files, e.p.Bytes
}

func (e *emitter) report() {
	e.p.BytesHashed = e.hashed.Load()
	e.p.Elapsed = time.Since(e.start)
	e.progress(e.p)
}
