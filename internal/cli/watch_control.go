package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/control"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/monitor"
	"github.com/vigilfim/vigil/internal/record"
	"github.com/vigilfim/vigil/internal/watch"
)

// controlledWatch gives each change a watch reports its change-control
// verdict, judged with the who-data of the change, before it is printed and
// recorded; then it settles it: authorized changes are accepted into the
// baseline at once, the others open a review item.
type controlledWatch struct {
	inner  monitor.Sink
	ctx    context.Context
	ctl    *control.Controller
	host   string
	acc    control.Acceptor
	record func(kind string, body any) error // evidence of settlements; may be nil
}

func newControlledWatch(ctx context.Context, inner monitor.Sink, ctl *control.Controller, acc control.Acceptor, record func(string, any) error) *controlledWatch {
	host, _ := os.Hostname()
	return &controlledWatch{inner: inner, ctx: ctx, ctl: ctl, host: host, acc: acc, record: record}
}

func (w *controlledWatch) Change(o *record.Observed, c *fim.Change) error {
	if o.Type == record.Transient {
		return w.inner.Change(o, c)
	}
	at, err := time.Parse(time.RFC3339Nano, o.Time)
	if err != nil {
		at = time.Now()
	}
	var who *change.Actor
	if o.Who != nil {
		who = control.ActorFields(string(o.Who.Attribution), o.Who.UID, o.Who.AUID, o.Who.User, o.Who.LoginUser, o.Who.Exe, o.Who.Comm)
	}
	v, err := w.ctl.Classify(w.ctx, w.host, c, at, who)
	if err != nil {
		return fmt.Errorf("classify change of %s: %w", displayPath(c.Path), err)
	}
	o.Verdict = &v
	if err := w.inner.Change(o, c); err != nil {
		return err
	}
	raw, err := json.Marshal(o)
	if err != nil {
		return err
	}
	evs, err := w.ctl.Settle(w.ctx, []control.Finding{{Host: w.host, Source: control.SourceWatch, Change: c, Record: raw, At: at, Actor: who, Verdict: v}}, w.acc)
	if w.record != nil {
		if rerr := recordSettlements(evs, w.record); err == nil {
			err = rerr
		}
	}
	return err
}

func (w *controlledWatch) Problem(path string, err error, source string) error {
	return w.inner.Problem(path, err, source)
}

func (w *controlledWatch) Health(t time.Time, h *watch.Health) error { return w.inner.Health(t, h) }
