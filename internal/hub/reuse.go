package hub

import (
	"bytes"
	"context"

	"github.com/vigilfim/vigil/internal/fleet"
)

// checkReuse compares the records of a batch that are at or below the
// agent's high-water mark with the records the hub stored under the same
// sequence numbers. A retry sends the same records again, and they are
// skipped as before; a spool restored from a backup (or otherwise rolled
// back) sends new records under numbers the hub already holds, and those
// would be skipped too and lost. A spool id cannot tell the two apart, as
// the backup holds the same id; the records themselves can: kind, time to
// the nanosecond and body. The first differing number is returned to the
// agent as diverged_at, so it can drop what the hub has (the records
// before it) and renumber the rest after the mark.
//
// This runs only for a batch overlapping the mark, which a healthy agent
// sends only after a lost acknowledgement, so it costs the normal path
// nothing. The mark is the one read when the request was authenticated:
// a mark moved since then by this agent's own earlier request can only
// cover records of the same spool, which are the same.
func (h *Hub) checkReuse(ctx context.Context, ag fleet.Agent, recs []fleet.Record) error {
	if len(recs) == 0 || recs[0].Seq > ag.HighWater {
		return nil
	}
	to := min(recs[len(recs)-1].Seq, ag.HighWater)
	stored, err := h.store.AgentRecords(ctx, ag.ID, recs[0].Seq, to)
	if err != nil {
		return err
	}
	have := make(map[uint64]*fleet.Record, len(stored))
	for i := range stored {
		have[stored[i].Seq] = &stored[i]
	}
	for i := range recs {
		r := &recs[i]
		if r.Seq > to {
			break
		}
		s, ok := have[r.Seq]
		if !ok {
			continue // nothing to compare with (not expected below the mark)
		}
		if s.Kind != r.Kind || s.Time.UnixNano() != r.Time.UnixNano() || !bytes.Equal(s.Body, r.Body) {
			return &hwError{err: fleet.ErrSequenceReused, hw: ag.HighWater, diverged: r.Seq}
		}
	}
	return nil
}
