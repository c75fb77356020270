package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/whodata"
)

// The relay copies ingested records into the evidence log, in commit order,
// exactly once. Records are first committed to fleet_records together with
// the agent's high-water mark (what makes ingestion idempotent); the relay
// then appends them to the log and moves its cursor. A crash between the
// append and the cursor move is repaired at start: the relay reads the
// leaves appended since the last cursor move and skips what they hold.
const (
	cursorRID  = "evidence_rid"  // last record RID appended
	cursorSize = "evidence_size" // log size after that append
	// relayBatch is small enough that an evidence append holds the
	// store's write lock for tens of milliseconds, not hundreds: with 2048
	// the group commits under `go run ./bench/fleet load` spent most of
	// their time waiting for it (p99 7.9 s; with 512, 3.2 s on the same
	// machine a minute later).
	relayBatch = 512
)

// relayStore is what the relay needs of the evidence store.
type relayStore interface {
	LogSize(ctx context.Context) (uint64, error)
	evidence.LeafScanner
}

// evidenceAppender is the part of evidence.Log the hub uses.
type evidenceAppender interface {
	Append(ctx context.Context, r evidence.Record) (uint64, error)
	AppendBatch(ctx context.Context, recs []evidence.Record) (uint64, error)
}

// ingestedBody is the evidence payload of a relayed record: the agent's
// record as it sent it, and where it came from.
type ingestedBody struct {
	RID    int64           `json:"rid"`
	Agent  string          `json:"agent"`
	Seq    uint64          `json:"seq"`
	Record json.RawMessage `json:"record"`
}

// relayFleet is what the relay needs of the fleet store.
type relayFleet interface {
	RecordsAfter(ctx context.Context, rid int64, limit int) ([]fleet.StoredRecord, error)
	Cursor(ctx context.Context, name string) (int64, error)
	SetCursor(ctx context.Context, name string, v int64) error
}

// relayTarget is where one relay run reads and appends: the hub's own
// store and log, or with several hubs the lease's (lease.go).
type relayTarget struct {
	st  relayFleet
	ev  relayStore
	log evidenceAppender
}

// recoverCursor finds the last RID already in the log.
func recoverCursor(ctx context.Context, st relayFleet, rs relayStore) (int64, error) {
	rid, err := st.Cursor(ctx, cursorRID)
	if err != nil {
		return 0, err
	}
	from, err := st.Cursor(ctx, cursorSize)
	if err != nil {
		return 0, err
	}
	size, err := rs.LogSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("recover relay cursor: %w", err)
	}
	err = rs.ScanLeaves(ctx, uint64(from), size, func(l *evidence.StoredLeaf) error {
		if l.Leaf == nil || (l.Kind != evidence.KindChange && l.Kind != evidence.KindHealth) {
			return nil
		}
		_, r, err := evidence.DecodeLeaf(l.Leaf)
		if err != nil {
			return err
		}
		var b struct {
			RID   int64  `json:"rid"`
			Agent string `json:"agent"`
		}
		if json.Unmarshal(r.Body, &b) == nil && b.Agent != "" && b.RID > rid {
			rid = b.RID
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("recover relay cursor: %w", err)
	}
	return rid, nil
}

// relay runs until ctx ends. On a store of its own (SQLite) the hub
// relays; on a shared one (PostgreSQL) the hubs elect one (relayLeased).
func (h *Hub) relay(ctx context.Context, wake <-chan struct{}) error {
	if h.leaser != nil {
		return h.relayLeased(ctx, wake)
	}
	return h.relayWith(ctx, wake, nil, relayTarget{h.store, h.evStore, h.log})
}

// relayWith runs until ctx ends, appending records whenever wake or poll
// fires. When ctx ends it drains what is committed (Serve stops it only
// after every request finished), so a clean shutdown leaves nothing for
// the next start.
func (h *Hub) relayWith(ctx context.Context, wake <-chan struct{}, poll <-chan time.Time, t relayTarget) error {
	// Recover even when stopped at once, so the drain below starts from
	// the right place.
	rid, err := recoverCursor(context.WithoutCancel(ctx), t.st, t.ev)
	if err != nil {
		return err
	}
	// Statements never see ctx's cancellation: pgx closes a connection
	// whose query is cancelled, and a lease's connection is the lease.
	bg := context.WithoutCancel(ctx)
	for {
		n, err := h.relayOnce(bg, &rid, t)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
		case <-wake:
			continue
		case <-poll:
			continue
		}
		break
	}
	// Reconcile with the log before draining, in case a cursor write
	// failed after its append.
	final := context.WithoutCancel(ctx)
	if rid, err = recoverCursor(final, t.st, t.ev); err != nil {
		return err
	}
	for {
		n, err := h.relayOnce(final, &rid, t)
		if err != nil || n == 0 {
			return err
		}
	}
}

// relayOnce appends the next batch of records after *rid and moves the
// cursor; it returns how many it appended.
func (h *Hub) relayOnce(ctx context.Context, rid *int64, t relayTarget) (int, error) {
	recs, err := t.st.RecordsAfter(ctx, *rid, relayBatch)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	ev := make([]evidence.Record, 0, len(recs))
	for _, r := range recs {
		kind := evidence.KindChange
		actor := "vigil/agent"
		if r.Kind == fleet.KindHealth {
			kind = evidence.KindHealth
		} else {
			actor = whoOf(r.Body)
		}
		e := evidence.Record{Kind: kind, Time: r.Time, Host: r.Host, Actor: actor, Body: relayBody(r)}
		ev = append(ev, e)
	}
	// Never cancel an append: one cut short may still commit later, after
	// the relay decided it had not, and the batch would be appended twice.
	ctx = context.WithoutCancel(ctx)
	first, err := t.log.AppendBatch(ctx, ev)
	if err != nil {
		return 0, fmt.Errorf("relay records to evidence: %w", err)
	}
	*rid = recs[len(recs)-1].RID
	// RID first: a crash between the two writes only makes the next start
	// rescan a few more leaves.
	if err := t.st.SetCursor(ctx, cursorRID, *rid); err != nil {
		return 0, err
	}
	if err := t.st.SetCursor(ctx, cursorSize, int64(first)+int64(len(ev))); err != nil {
		return 0, err
	}
	return len(recs), nil
}

// relayBody is the canonical JSON of ingestedBody for r, written directly:
// encoding/json would re-validate and re-compact the record body twice,
// which profiling the hub under bench/fleet showed as a quarter of its CPU.
// The body was compacted and validated at ingestion; the agent id is hex
// (newID) and the kind one of two constants, so nothing here needs
// escaping. TestRelayBody checks it against encoding/json.
func relayBody(r fleet.StoredRecord) []byte {
	b := make([]byte, 0, len(r.Body)+160)
	b = append(b, `{"rid":`...)
	b = strconv.AppendInt(b, r.RID, 10)
	b = append(b, `,"agent":`...)
	b = strconv.AppendQuote(b, r.AgentID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"record":{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"kind":`...)
	b = strconv.AppendQuote(b, r.Kind)
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","body":`...)
	b = append(b, r.Body...)
	return append(b, "}}"...)
}

// whoOf names the actor of a change record from its who-data, the way
// the CLI's journal does: uid and login uid, with names when known. It
// decodes only the "who" member when topLevel can find it the way
// encoding/json would: decoding whole bodies here was a quarter of the
// relay's CPU under `go run ./bench/fleet load`.
func whoOf(body json.RawMessage) string {
	var w *whodata.Who
	if raw, found, ok := topLevel(body, "who"); ok {
		if found && json.Unmarshal(raw, &w) != nil {
			return "unknown"
		}
	} else {
		var b struct {
			Who *whodata.Who `json:"who"`
		}
		if json.Unmarshal(body, &b) != nil {
			return "unknown"
		}
		w = b.Who
	}
	if w == nil || w.UID == nil {
		return "unknown"
	}
	s := fmt.Sprintf("uid=%d(%s)", *w.UID, w.User)
	if w.AUID != nil && *w.AUID != whodata.UnsetID {
		s += fmt.Sprintf(" auid=%d(%s)", *w.AUID, w.LoginUser)
	}
	if len(s) > evidence.MaxActorLen {
		s = s[:evidence.MaxActorLen]
	}
	return s
}

// topLevel returns the raw value of member key of the JSON object obj
// (validated at ingestion) without decoding the rest. ok is false when it
// cannot answer exactly as encoding/json would decode into a field tagged
// key: a member name with escapes or non-ASCII bytes, one matching key
// only case-insensitively, key twice, or anything unexpected. The caller
// then decodes the whole object.
func topLevel(obj []byte, key string) (val []byte, found, ok bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false, false
	}
	i++
	for first := true; ; first = false {
		i = skipSpace(obj, i)
		if i < len(obj) && obj[i] == '}' {
			return val, found, skipSpace(obj, i+1) == len(obj)
		}
		if !first {
			if i >= len(obj) || obj[i] != ',' {
				return nil, false, false
			}
			i = skipSpace(obj, i+1)
		}
		end := skipString(obj, i)
		if end < 0 {
			return nil, false, false
		}
		name := obj[i+1 : end-1]
		for _, c := range name {
			if c == '\\' || c >= 0x80 {
				return nil, false, false
			}
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false, false
		}
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		if vend < 0 {
			return nil, false, false
		}
		switch {
		case string(name) == key:
			if found {
				return nil, false, false
			}
			val, found = obj[i:vend], true
		case bytes.EqualFold(name, []byte(key)):
			return nil, false, false
		}
		i = vend
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i], or -1.
func skipString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := skipString(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}
