package hub

import (
	"context"

	"github.com/vigilfim/vigil/internal/fleet"
)

// ingestReq is one agent's batch waiting for the committer, which calls
// done with its outcome once the group it went into committed (or failed).
// done must not block: it runs on the committer's goroutine.
type ingestReq struct {
	batch fleet.Batch
	done  func(fleet.IngestResult)
}

// maxGroup bounds the batches committed in one transaction: 1024 lets one
// transaction take a request from each of a thousand agents, which
// `go run ./bench/fleet load -agents 1000` showed to beat 256 clearly.
const maxGroup = 1024

// committer group-commits queued batches: while one transaction commits,
// the next gathers, so a thousand agents cost a few transactions a second
// instead of a thousand fsyncs.
func (h *Hub) committer(ctx context.Context) error {
	for {
		var group []*ingestReq
		select {
		case <-ctx.Done():
			return nil
		case r := <-h.ingest:
			group = append(group, r)
		}
	gather:
		for len(group) < maxGroup {
			select {
			case r := <-h.ingest:
				group = append(group, r)
			default:
				break gather
			}
		}
		batches := make([]fleet.Batch, len(group))
		for i, r := range group {
			batches[i] = r.batch
		}
		res, err := h.store.Ingest(ctx, h.opts.Now(), batches)
		for i, r := range group {
			if err != nil {
				r.done(fleet.IngestResult{Err: err})
			} else {
				r.done(res[i])
			}
		}
		if err == nil {
			select {
			case h.wake <- struct{}{}:
			default:
			}
		}
	}
}

// submit queues a batch and waits for its commit.
func (h *Hub) submit(ctx context.Context, b fleet.Batch) fleet.IngestResult {
	done := make(chan fleet.IngestResult, 1)
	r := &ingestReq{batch: b, done: func(res fleet.IngestResult) { done <- res }}
	select {
	case h.ingest <- r:
	case <-ctx.Done():
		return fleet.IngestResult{Err: ctx.Err()}
	}
	select {
	case res := <-done:
		return res
	case <-ctx.Done():
		return fleet.IngestResult{Err: ctx.Err()}
	}
}
