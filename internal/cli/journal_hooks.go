package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/monitor"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/record"
	"github.com/vigilfim/vigil/internal/watch"
)

// journalingSink appends every change and problem a command reports to
// the evidence log, exactly as reported (verdict included), then passes it
// on to the printer.
type journalingSink struct {
	inner  sink
	ctx    context.Context
	j      *journal
	kind   string // evidence kind for changes: change, or acceptance
	source string // check, accept
	extra  map[string]any
	now    func() time.Time
	// ledger, for checks, leaves out change records the log already
	// holds (check_ledger.go); nil records every change.
	ledger *checkLedger
}

// journalSink wraps s when there is a journal.
func journalSink(ctx context.Context, s sink, j *journal, kind, source string, extra map[string]any, now func() time.Time) sink {
	if j == nil {
		return s
	}
	return &journalingSink{inner: s, ctx: ctx, j: j, kind: kind, source: source, extra: extra, now: now}
}

// checkJournalSink is journalSink for a check: changes already in the log
// are not recorded again (l may be nil: record everything).
func checkJournalSink(ctx context.Context, s sink, j *journal, l *checkLedger, now func() time.Time) sink {
	if j == nil {
		return s
	}
	return &journalingSink{inner: s, ctx: ctx, j: j, kind: evidence.KindChange, source: "check", now: now, ledger: l}
}

type changeEvidence struct {
	*record.Change
	Source string         `json:"source"`
	Extra  map[string]any `json:"context,omitempty"`
}

func (s *journalingSink) change(r *record.Change, c *fim.Change) error {
	if err := s.inner.change(r, c); err != nil {
		return err
	}
	return s.j.recordOnce(s.ctx, s.ledger, c.Path, s.kind, s.now(), "", changeEvidence{r, s.source, s.extra})
}

func (s *journalingSink) problem(p record.Problem, path string, err error) error {
	if e := s.inner.problem(p, path, err); e != nil {
		return e
	}
	return s.j.record(s.ctx, evidence.KindHealth, s.now(), "", map[string]any{
		"event": "entry-not-examined", "source": s.source, "problem": p,
	})
}

func (s *journalingSink) finish(sum *record.Summary) error { return s.inner.finish(sum) }

// policyEvidence describes a policy as loaded, by digest of its canonical
// form, so the log shows which rules were in force for every later record.
func policyEvidence(src []byte, pol *policy.Policy, how string) map[string]any {
	sum := sha256.Sum256(src)
	return map[string]any{"name": pol.Name, "sha256": hex.EncodeToString(sum[:]), "roots": pol.Roots(), "rules": len(pol.Rules), "loaded_by": how}
}

// journaledWatch records everything a watch reports. Records go through
// a bounded queue to a writer that appends them in batches, so a burst of
// changes costs one durable commit per batch rather than one per change,
// and printing is never held up by the database. A failure to record
// stops the watch (the next call returns it): gaps are never silent.
type journaledWatch struct {
	inner monitor.Sink
	j     *journal
	q     chan evidence.Record
	done  chan struct{}
	errMu sync.Mutex
	err   error
}

func newJournaledWatch(ctx context.Context, inner monitor.Sink, j *journal) *journaledWatch {
	w := &journaledWatch{inner: inner, j: j, q: make(chan evidence.Record, 4096), done: make(chan struct{})}
	go w.write(context.WithoutCancel(ctx))
	return w
}

func (w *journaledWatch) write(ctx context.Context) {
	defer close(w.done)
	batch := make([]evidence.Record, 0, 512)
	for r := range w.q {
		batch = append(batch[:0], r)
	more:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-w.q:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		if _, err := w.j.log.AppendBatch(ctx, batch); err != nil {
			w.setErr(fmt.Errorf("record evidence: %w", err))
			for range w.q { // keep producers from blocking; the error stops them
			}
			return
		}
		w.j.wrote = true
	}
}

func (w *journaledWatch) setErr(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *journaledWatch) enqueue(kind string, t time.Time, body any) error {
	w.errMu.Lock()
	err := w.err
	w.errMu.Unlock()
	if err != nil {
		return err
	}
	r, err := evidence.NewRecord(kind, t, w.j.host, w.j.actor, body)
	if err != nil {
		return fmt.Errorf("record %s evidence: %w", kind, err)
	}
	w.q <- r
	return nil
}

// close flushes the queue; the journal's own close signs the checkpoint.
func (w *journaledWatch) close() error {
	close(w.q)
	<-w.done
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *journaledWatch) Change(o *record.Observed, c *fim.Change) error {
	if err := w.inner.Change(o, c); err != nil {
		return err
	}
	t, _ := time.Parse(time.RFC3339Nano, o.Time)
	return w.enqueue(evidence.KindChange, t, o)
}

func (w *journaledWatch) Problem(path string, err error, source string) error {
	if e := w.inner.Problem(path, err, source); e != nil {
		return e
	}
	return w.enqueue(evidence.KindHealth, time.Now(), map[string]any{
		"event": "entry-not-examined", "source": source, "problem": record.NewProblem(path, err),
	})
}

func (w *journaledWatch) Health(t time.Time, h *watch.Health) error {
	if err := w.inner.Health(t, h); err != nil {
		return err
	}
	return w.enqueue(evidence.KindHealth, t, h)
}
