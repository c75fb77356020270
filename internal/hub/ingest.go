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

// maxGroup and maxGroupRecords bound one transaction. A record stream
// hands over whatever has arrived, often a record or two, so a group holds
// thousands of small batches: capping it at 1024 batches had made the
// commit rate, not CPU, the limit under `go run ./bench/fleet load` (1,000
// agents at 20 records/s, commits of ~1,200 records). The store's cost per
// transaction is per agent and per record, so a large group costs no more
// per record than a small one; the record cap bounds its memory and the
// length of the write lock.
const (
	maxGroup        = 16384
	maxGroupRecords = 20000
)

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
		n := len(group[0].batch.Records)
	gather:
		for len(group) < maxGroup && n < maxGroupRecords {
			select {
			case r := <-h.ingest:
				group = append(group, r)
				n += len(r.batch.Records)
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
