package evidence

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PruneBody is the payload of a KindPrune record.
type PruneBody struct {
	// Before: payloads of records older than this were dropped.
	Before time.Time `json:"before"`
	// BelowIndex: only records with a smaller index were considered (the
	// log size when the prune started; the prune record comes after).
	BelowIndex uint64 `json:"below_index"`
	// Pruned is how many payloads were dropped.
	Pruned uint64 `json:"pruned"`
	// Reason is the operator's justification, e.g. a retention policy ID.
	Reason string `json:"reason,omitempty"`
}

// PruneRequest describes one retention prune.
type PruneRequest struct {
	// Before: drop the payloads of records whose Time is before this.
	Before time.Time
	// Now is when the prune is made (the prune record's time).
	Now time.Time
	// Host, Actor and Reason go into the prune record.
	Host, Actor, Reason string
}

// PruneResult says what a prune did.
type PruneResult struct {
	// Record is the index of the prune record.
	Record uint64
	// Pruned is how many payloads were dropped.
	Pruned uint64
}

// PruneStore is what Prune needs besides the Log.
type PruneStore interface {
	LogSize(ctx context.Context) (uint64, error)
	PayloadPruner
}

// Prune drops the payloads (not the leaf hashes) of records older than
// req.Before, so every checkpoint and proof stays valid for what remains.
// It is explicit and logged: the prune record is appended, durably, before
// any payload is dropped, so a payload is never missing without the record
// that explains it. Prune records themselves are never pruned. Running the
// same prune again after a crash finishes it.
func (l *Log) Prune(ctx context.Context, store PruneStore, req PruneRequest) (PruneResult, error) {
	if req.Before.IsZero() {
		return PruneResult{}, errors.New("prune: no cut-off time")
	}
	if req.Now.IsZero() {
		return PruneResult{}, errors.New("prune: no current time")
	}
	below, err := store.LogSize(ctx)
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune: read log size: %w", err)
	}
	beforeNS := req.Before.UnixNano()
	n, err := store.PruneLeaves(ctx, below, beforeNS, true)
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune: count payloads: %w", err)
	}
	body := PruneBody{Before: req.Before.UTC(), BelowIndex: below, Pruned: n, Reason: req.Reason}
	rec, err := NewRecord(KindPrune, req.Now, req.Host, req.Actor, body)
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune: %w", err)
	}
	idx, err := l.Append(ctx, rec)
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune: log the prune: %w", err)
	}
	got, err := store.PruneLeaves(ctx, below, beforeNS, false)
	if err != nil {
		return PruneResult{Record: idx}, fmt.Errorf("prune: drop payloads: %w", err)
	}
	return PruneResult{Record: idx, Pruned: got}, nil
}
