package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/store"
)

// recordAction appends a change-control action (a request opened or
// decided, a review, a manifest) to the evidence log and signs a
// checkpoint over it, copied to the witnesses of pol (the policy the
// controller already loaded, so the baseline is not read twice). The
// action has already been stored; a failure here is reported as the
// command's failure so the gap is seen.
func recordAction(ctx context.Context, f *ccFlags, pol *policy.Policy, kind string, body any) error {
	sp, err := resolveState(f.db, "")
	if err != nil {
		return err
	}
	key, err := signingKey(sp)
	if err != nil {
		return fmt.Errorf("record %s evidence: %w", kind, err)
	}
	j, err := openJournal(ctx, sp, f.store, key, witnesses(pol, nil), pol.Evidence.CheckpointInterval)
	if err != nil {
		return err
	}
	if err := j.record(ctx, kind, time.Now(), "", body); err != nil {
		j.close(ctx)
		return err
	}
	return j.close(ctx)
}

// recordSettlements makes each settlement of a change evidence: an
// acceptance into the baseline, or an exception opened for review. It
// records them all and returns the first error.
func recordSettlements(evs []store.ChangeEvent, record func(kind string, body any) error) error {
	return recordSettlementsOf(evs, func(kind string, _ *store.ChangeEvent, body any) error { return record(kind, body) })
}

// recordSettlementsOf is recordSettlements for a record function that
// wants the event each record is about.
func recordSettlementsOf(evs []store.ChangeEvent, record func(kind string, ev *store.ChangeEvent, body any) error) error {
	var first error
	for i := range evs {
		ev := &evs[i]
		kind := evidence.KindReview
		if ev.Review == "" {
			kind = evidence.KindAcceptance
		}
		if err := record(kind, ev, map[string]any{"action": "settle", "event": ev}); err != nil && first == nil {
			first = err
		}
	}
	return first
}
