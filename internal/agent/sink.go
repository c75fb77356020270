package agent

import (
	"time"

	"context"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/monitor"
	"github.com/vigilfim/vigil/internal/record"
	"github.com/vigilfim/vigil/internal/watch"
)

// Sink is the monitor's output into the spool: every change and health
// event becomes one spooled record, durable before the monitor goes on.
type Sink struct {
	a *Agent
}

var _ monitor.Sink = (*Sink)(nil)

// Change implements monitor.Sink.
func (s *Sink) Change(o *record.Observed, _ *fim.Change) error {
	t, err := time.Parse(time.RFC3339Nano, o.Time)
	if err != nil {
		t = s.a.cfg.Now()
	}
	_, err = s.a.spool.Append(context.Background(), fleet.KindChange, t, o)
	return err
}

// Problem implements monitor.Sink: an entry that could not be examined is
// a health event (a gap in monitoring is never silent).
func (s *Sink) Problem(path string, err error, source string) error {
	p := record.NewProblem(path, err)
	_, serr := s.a.spool.Append(context.Background(), fleet.KindHealth, s.a.cfg.Now(), map[string]any{"problem": p, "source": source})
	return serr
}

// Health implements monitor.Sink.
func (s *Sink) Health(t time.Time, h *watch.Health) error {
	s.a.setStatus(func(st *Status) {
		if h.Backend != "" {
			st.WatcherBackend = string(h.Backend)
		}
		st.WatcherHealth = string(h.Kind)
	})
	_, err := s.a.spool.Append(context.Background(), fleet.KindHealth, t, record.HealthRecord{Time: t.UTC().Format(time.RFC3339Nano), Type: "health", Health: h})
	return err
}
