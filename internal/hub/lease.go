package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/postgres"
)

// Several hubs over one PostgreSQL database. Ingestion is safe as it is
// (each agent's mark is row-locked in the ingesting transaction, and the
// store commits records in RID order); enrolment, users and revocation are
// single statements or transactions; each hub's own evidence appends
// compare-and-set the log head and retry. What must not run twice is the
// relay: two hubs appending the same records would log them twice. So the
// hubs elect one relay with a lease (a session advisory lock, see
// postgres.Lease): the holder relays through the lease's connection, with
// an evidence log of its own on it, and polls for records other hubs
// committed; the others retry the lease every relayPoll. A holder that
// dies loses the lease with its session, after which the next holder
// recovers the cursor from the log (recoverCursor) exactly as after a
// crash of a single hub.
const (
	relayLease = "relay"
	// relayPoll is how often the relay looks for records other hubs
	// committed (its own hub's commits wake it at once), and how often a
	// standby hub tries to take the lease: a second of delay into the
	// evidence log, for a query a second per hub.
	relayPoll = time.Second
)

// relayLeaser takes the relay lease; *postgres.DB implements it.
type relayLeaser interface {
	TryLease(ctx context.Context, name string) (*postgres.Lease, bool, error)
}

// relayLeased relays while this hub holds the lease and waits for it
// otherwise. When ctx ends, a hub that does not hold the lease takes it
// once if it is free and drains, so whichever hub stops last leaves no
// committed record behind.
func (h *Hub) relayLeased(ctx context.Context, wake <-chan struct{}) error {
	tick := time.NewTicker(relayPoll)
	defer tick.Stop()
	for {
		held, err := h.leadRelay(ctx, wake, tick.C)
		if ctx.Err() != nil {
			if !held && err == nil {
				_, err = h.leadRelay(ctx, wake, nil)
			}
			return err
		}
		if err != nil {
			h.logger.Error("relay lease lost; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-wake: // our commits: nothing to do until we hold the lease
		}
	}
}

// leadRelay takes the lease if it is free and relays until ctx ends or an
// error; held says whether it got the lease.
func (h *Hub) leadRelay(ctx context.Context, wake <-chan struct{}, poll <-chan time.Time) (held bool, err error) {
	bg := context.WithoutCancel(ctx)
	lease, ok, err := h.leaser.TryLease(bg, relayLease)
	if err != nil || !ok {
		return false, err
	}
	defer func() {
		if rerr := lease.Release(bg); rerr != nil && err == nil {
			err = rerr
		}
	}()
	st := lease.Store()
	log, err := evidence.OpenLog(bg, st, evidence.LogOptions{})
	if err != nil {
		return true, fmt.Errorf("open relay evidence log: %w", err)
	}
	h.logger.Info("relaying records into the evidence log for the hubs sharing the database")
	err = h.relayWith(ctx, wake, poll, relayTarget{st, st, log})
	if cerr := log.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return true, err
}
