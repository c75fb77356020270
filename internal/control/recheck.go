package control

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigilfim/vigil/internal/record"
	"github.com/vigilfim/vigil/internal/store"
)

// SourceRecheck marks the change event recorded when a provisionally
// authorized (emergency) change turned out unauthorized at its recheck.
const SourceRecheck = "recheck"

// recheckMargin is how far back, beyond the emergency approval time, a
// recheck looks for provisional verdicts: a check that did not run for a
// week still finds the emergencies whose deadline passed meanwhile.
const recheckMargin = 7 * 24 * time.Hour

// Recheck classifies again the provisionally authorized changes (verdicts
// with recheck_at: emergency changes) whose recheck time has come, and
// records those that turned unauthorized as new change events of source
// "recheck" with a review item; those approved in time keep their verdict.
// Each provisional change is rechecked into at most one event. It looks
// at changes made since the emergency approval time plus a week.
func (c *Controller) Recheck(ctx context.Context) ([]store.ChangeEvent, error) {
	now := c.now().UTC()
	from := now.Add(-c.emergency - recheckMargin)
	var due []store.ChangeEvent
	done := map[string]bool{}
	err := c.st.Events(ctx, from, time.Time{}, func(e store.ChangeEvent) error {
		switch {
		case e.Source == SourceRecheck:
			done[recheckKey(&e)] = true
		case e.Verdict.Authorized && e.Verdict.RecheckAt != nil && !e.Verdict.RecheckAt.After(now):
			due = append(due, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recheck provisional verdicts: %w", err)
	}
	var fs []Finding
	for _, e := range due {
		if done[recheckKey(&e)] {
			continue
		}
		var rec record.Change
		if err := json.Unmarshal(e.Change, &rec); err != nil {
			return nil, fmt.Errorf("recheck change event %d: %w", e.ID, err)
		}
		ch, err := rec.ChangeJSON.Change()
		if err != nil {
			return nil, fmt.Errorf("recheck change event %d: %w", e.ID, err)
		}
		v, err := c.Classify(ctx, e.Host, ch, e.At, e.Actor)
		if err != nil {
			return nil, err
		}
		if v.Authorized {
			continue
		}
		rec.Verdict = &v
		raw, err := json.Marshal(&rec)
		if err != nil {
			return nil, fmt.Errorf("recheck change event %d: %w", e.ID, err)
		}
		fs = append(fs, Finding{Host: e.Host, Source: SourceRecheck, Change: ch, Record: raw, At: e.At, Actor: e.Actor, Verdict: v})
	}
	if len(fs) == 0 {
		return nil, nil
	}
	return c.Settle(ctx, fs, nil)
}

// recheckKey identifies a provisional change: host, path and time made.
func recheckKey(e *store.ChangeEvent) string {
	return e.Host + "\x00" + e.Path + "\x00" + e.At.UTC().Format(time.RFC3339Nano)
}
