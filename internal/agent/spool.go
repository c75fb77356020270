package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/vigilfim/vigil/internal/fleet"
)

// spoolDSN: WAL so the sender reads while the watcher appends;
// synchronous=FULL so a record is on disk before Append returns (the
// promise "nothing lost" is made to the watcher, not to the hub); an
// immediate transaction lock so the two never deadlock upgrading.
const spoolDSN = "?_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate"

// Spool is the agent's durable queue of records for the hub. Append gives
// each record the next sequence number (AUTOINCREMENT never reuses one, even
// after the rows are deleted); Ack deletes what the hub acknowledged. The
// records survive agent crashes, reboots and hub outages of any length,
// bounded only by disk.
type Spool struct {
	db     *sql.DB
	notify chan struct{}
	mu     sync.Mutex // serialises appends so sequence order is append order
}

// OpenSpool opens (creating) the spool database at path.
func OpenSpool(ctx context.Context, path string) (*Spool, error) {
	db, err := sql.Open("sqlite", path+spoolDSN)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", path, err)
	}
	db.SetMaxOpenConns(2)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS spool (
		seq     INTEGER PRIMARY KEY AUTOINCREMENT,
		kind    TEXT    NOT NULL,
		time_ns INTEGER NOT NULL,
		body    BLOB    NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("open spool %s: %w", path, err)
	}
	return &Spool{db: db, notify: make(chan struct{}, 1)}, nil
}

// Close closes the spool.
func (s *Spool) Close() error { return s.db.Close() }

// Append stores one record durably and returns its sequence number.
func (s *Spool) Append(ctx context.Context, kind string, t time.Time, body any) (uint64, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, fmt.Errorf("spool %s record: %w", kind, err)
	}
	seqs, err := s.AppendRaw(ctx, []fleet.Record{{Kind: kind, Time: t, Body: b}})
	if err != nil {
		return 0, err
	}
	return seqs, nil
}

// AppendRaw stores records (their Seq is ignored) in one transaction and
// returns the sequence number of the last.
func (s *Spool) AppendRaw(ctx context.Context, recs []fleet.Record) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("spool records: %w", err)
	}
	defer tx.Rollback()
	var last int64
	for _, r := range recs {
		res, err := tx.ExecContext(ctx, `INSERT INTO spool (kind, time_ns, body) VALUES (?, ?, ?)`, r.Kind, r.Time.UnixNano(), []byte(r.Body))
		if err != nil {
			return 0, fmt.Errorf("spool records: %w", err)
		}
		if last, err = res.LastInsertId(); err != nil {
			return 0, fmt.Errorf("spool records: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit spool: %w", err)
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return uint64(last), nil
}

// PeekAfter returns up to limit records with sequence numbers above
// after, in sequence order: PeekAfter(0, n) reads from the oldest.
func (s *Spool) PeekAfter(ctx context.Context, after uint64, limit int) ([]fleet.Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, kind, time_ns, body FROM spool WHERE seq > ? ORDER BY seq LIMIT ?`, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	defer rows.Close()
	var out []fleet.Record
	for rows.Next() {
		var r fleet.Record
		var seq, tns int64
		var body []byte
		if err := rows.Scan(&seq, &r.Kind, &tns, &body); err != nil {
			return nil, fmt.Errorf("read spool: %w", err)
		}
		r.Seq, r.Time, r.Body = uint64(seq), time.Unix(0, tns).UTC(), body
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	return out, nil
}

// Ack deletes every record with a sequence number up to hw.
func (s *Spool) Ack(ctx context.Context, hw uint64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM spool WHERE seq <= ?`, int64(hw)); err != nil {
		return fmt.Errorf("acknowledge spool: %w", err)
	}
	return nil
}

// Depth returns how many records wait for the hub.
func (s *Spool) Depth(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM spool`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count spool: %w", err)
	}
	return n, nil
}

// Notify fires (coalesced) after every append.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Rebase repairs a spool that reuses sequence numbers the hub holds for
// other records: restored from a backup, it numbers new records after its
// own old counter, under numbers the hub already gave to the records the
// original spool sent after the backup. The hub found the first such number
// (divergedAt, at or below its high-water mark hw): every spooled record
// before it is one the hub has, the same, and is deleted; the rest are new
// and are renumbered from hw+1 in their order, and the counter moves past
// them. A health record saying so is spooled after them, in the same
// transaction, so the repair is never silent. It returns how many records
// were renumbered.
func (s *Spool) Rebase(ctx context.Context, divergedAt, hw uint64, now time.Time) (int64, error) {
	if divergedAt == 0 || divergedAt > hw {
		return 0, fmt.Errorf("rebase spool: diverged at %d is not at or below the hub's mark %d", divergedAt, hw)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("rebase spool: %w", err)
	}
	defer tx.Rollback()
	dropped, err := tx.ExecContext(ctx, `DELETE FROM spool WHERE seq < ?`, int64(divergedAt))
	if err != nil {
		return 0, fmt.Errorf("rebase spool: %w", err)
	}
	shift := int64(hw + 1 - divergedAt)
	// Through negative numbers: shifting up in place would collide with
	// rows not yet moved.
	res, err := tx.ExecContext(ctx, `UPDATE spool SET seq = -(seq + ?) WHERE seq >= ?`, shift, int64(divergedAt))
	if err != nil {
		return 0, fmt.Errorf("rebase spool: %w", err)
	}
	moved, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `UPDATE spool SET seq = -seq WHERE seq < 0`); err != nil {
		return 0, fmt.Errorf("rebase spool: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = MAX(seq, ?, (SELECT COALESCE(MAX(seq), 0) FROM spool)) WHERE name = 'spool'`, int64(hw)); err != nil {
		return 0, fmt.Errorf("rebase spool: %w", err)
	}
	n, _ := dropped.RowsAffected()
	body, _ := json.Marshal(map[string]any{"event": "spool_sequence_reused", "diverged_at": divergedAt, "hub_high_water": hw,
		"dropped_already_delivered": n, "renumbered": moved})
	if _, err := tx.ExecContext(ctx, `INSERT INTO spool (kind, time_ns, body) VALUES (?, ?, ?)`, fleet.KindHealth, now.UnixNano(), body); err != nil {
		return 0, fmt.Errorf("rebase spool: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit spool rebase: %w", err)
	}
	return moved, nil
}
