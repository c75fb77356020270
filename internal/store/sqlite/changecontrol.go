package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/store"
)

// ns maps a time to the integer nanoseconds stored; the zero time is the
// lowest value, for open-ended ranges.
func ns(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// nsTo is ns for an exclusive upper bound: the zero time means no bound.
func nsTo(t time.Time) int64 {
	if t.IsZero() {
		return math.MaxInt64
	}
	return t.UnixNano()
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// CreateRequest stores a new change request; store.ErrExists if its ID is
// taken.
func (d *DB) CreateRequest(ctx context.Context, r change.Request) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO change_requests (id, window_start_ns, window_end_ns, doc) VALUES (?, ?, ?, ?)`,
		r.ID, ns(r.Window.Start), ns(r.Window.End), string(doc))
	if isUnique(err) {
		return fmt.Errorf("create request %s: %w", r.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	return nil
}

// PutRequest stores a request, replacing one with the same ID (an import
// from the ticketing system is the source of truth).
func (d *DB) PutRequest(ctx context.Context, r change.Request) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put request %s: %w", r.ID, err)
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO change_requests (id, window_start_ns, window_end_ns, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET window_start_ns = excluded.window_start_ns, window_end_ns = excluded.window_end_ns, doc = excluded.doc`,
		r.ID, ns(r.Window.Start), ns(r.Window.End), string(doc))
	if err != nil {
		return fmt.Errorf("put request %s: %w", r.ID, err)
	}
	return nil
}

// UpdateRequest replaces prev by next if the stored request is still prev:
// store.ErrConflict if someone changed it meanwhile, store.ErrNotFound if
// it is gone.
func (d *DB) UpdateRequest(ctx context.Context, prev, next change.Request) error {
	old, err := json.Marshal(prev)
	if err != nil {
		return fmt.Errorf("update request %s: %w", prev.ID, err)
	}
	doc, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("update request %s: %w", prev.ID, err)
	}
	if next.ID != prev.ID {
		return fmt.Errorf("update request %s: the ID can't change (to %s)", prev.ID, next.ID)
	}
	res, err := d.db.ExecContext(ctx, `UPDATE change_requests SET window_start_ns = ?, window_end_ns = ?, doc = ? WHERE id = ? AND doc = ?`,
		ns(next.Window.Start), ns(next.Window.End), string(doc), prev.ID, string(old))
	return casResult(res, err, "update request "+prev.ID, func() error {
		_, err := d.Request(ctx, prev.ID)
		return err
	})
}

// casResult turns a compare-and-set UPDATE's outcome into nil,
// ErrConflict or ErrNotFound (exists says which).
func casResult(res sql.Result, err error, what string, exists func() error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 1 {
		return nil
	}
	if err := exists(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, store.ErrConflict)
}

// Request returns the change request with the given ID.
func (d *DB) Request(ctx context.Context, id string) (change.Request, error) {
	var doc string
	err := d.db.QueryRowContext(ctx, `SELECT doc FROM change_requests WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return change.Request{}, fmt.Errorf("read request %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return change.Request{}, fmt.Errorf("read request %s: %w", id, err)
	}
	var r change.Request
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return change.Request{}, fmt.Errorf("read request %s: %w", id, err)
	}
	return r, nil
}

// Requests returns the requests whose window overlaps [from, to), by ID;
// a zero bound is open.
func (d *DB) Requests(ctx context.Context, from, to time.Time) ([]change.Request, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT doc FROM change_requests WHERE window_end_ns > ? AND window_start_ns < ? ORDER BY id`,
		ns(from), nsTo(to))
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	var out []change.Request
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("list requests: %w", err)
		}
		var r change.Request
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, fmt.Errorf("list requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// PutManifest stores a submitted manifest. Submitting the same bytes again
// is a no-op; other bytes for the same pipeline and run are
// store.ErrExists (a run deploys once).
func (d *DB) PutManifest(ctx context.Context, m store.Manifest) error {
	var exp any
	if m.Expires != nil {
		exp = m.Expires.UnixNano()
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO change_manifests (pipeline, run, created_ns, expires_ns, signed) VALUES (?, ?, ?, ?, ?)`,
		m.Pipeline, m.Run, m.Created.UnixNano(), exp, m.Signed)
	if isUnique(err) {
		var old []byte
		if err := d.db.QueryRowContext(ctx, `SELECT signed FROM change_manifests WHERE pipeline = ? AND run = ?`, m.Pipeline, m.Run).Scan(&old); err != nil {
			return fmt.Errorf("put manifest %s/%s: %w", m.Pipeline, m.Run, err)
		}
		if string(old) == string(m.Signed) {
			return nil
		}
		return fmt.Errorf("put manifest %s/%s: %w", m.Pipeline, m.Run, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put manifest %s/%s: %w", m.Pipeline, m.Run, err)
	}
	return nil
}

// Manifests returns the manifests valid at the given time (created at or
// before it, not expired), by pipeline and run.
func (d *DB) Manifests(ctx context.Context, at time.Time) ([]store.Manifest, error) {
	t := at.UnixNano()
	rows, err := d.db.QueryContext(ctx, `SELECT pipeline, run, created_ns, expires_ns, signed FROM change_manifests
		WHERE created_ns <= ? AND (expires_ns IS NULL OR expires_ns > ?) ORDER BY pipeline, run`, t, t)
	if err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	defer rows.Close()
	var out []store.Manifest
	for rows.Next() {
		var m store.Manifest
		var created int64
		var exp sql.NullInt64
		if err := rows.Scan(&m.Pipeline, &m.Run, &created, &exp, &m.Signed); err != nil {
			return nil, fmt.Errorf("list manifests: %w", err)
		}
		m.Created = time.Unix(0, created).UTC()
		if exp.Valid {
			e := time.Unix(0, exp.Int64).UTC()
			m.Expires = &e
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	return out, nil
}

// RecordEvent stores a classified change and, for an unauthorized one,
// the review item it opens, in one transaction. The store assigns the
// event's ID; the review's ID is "R-<event ID>" and its ChangeID the event
// ID, and the event's Review names it. It returns the event as stored.
func (d *DB) RecordEvent(ctx context.Context, e store.ChangeEvent, review *change.ReviewItem) (store.ChangeEvent, *change.ReviewItem, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return e, nil, fmt.Errorf("record change event: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO change_events (at_ns, authorized, doc) VALUES (?, ?, '')`,
		e.At.UnixNano(), e.Verdict.Authorized)
	if err != nil {
		return e, nil, fmt.Errorf("record change event: %w", err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return e, nil, fmt.Errorf("record change event: %w", err)
	}
	var it *change.ReviewItem
	if review != nil {
		r := *review
		r.ID = "R-" + strconv.FormatInt(e.ID, 10)
		r.ChangeID = strconv.FormatInt(e.ID, 10)
		e.Review = r.ID
		rdoc, err := json.Marshal(r)
		if err != nil {
			return e, nil, fmt.Errorf("record review: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO change_reviews (id, host, path, event_id, state, opened_ns, doc) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Host, []byte(r.Path), e.ID, string(r.State), r.Opened.UnixNano(), string(rdoc)); err != nil {
			return e, nil, fmt.Errorf("record review: %w", err)
		}
		it = &r
	}
	doc, err := json.Marshal(e)
	if err != nil {
		return e, nil, fmt.Errorf("record change event: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE change_events SET doc = ? WHERE id = ?`, string(doc), e.ID); err != nil {
		return e, nil, fmt.Errorf("record change event: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return e, nil, fmt.Errorf("record change event: %w", err)
	}
	return e, it, nil
}

// Events calls fn for each change event made in [from, to) (zero bounds
// are open), in time order, streaming.
func (d *DB) Events(ctx context.Context, from, to time.Time, fn func(store.ChangeEvent) error) error {
	rows, err := d.db.QueryContext(ctx, `SELECT doc FROM change_events WHERE at_ns >= ? AND at_ns < ? ORDER BY at_ns, id`,
		ns(from), nsTo(to))
	if err != nil {
		return fmt.Errorf("list change events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return fmt.Errorf("list change events: %w", err)
		}
		var e store.ChangeEvent
		if err := json.Unmarshal([]byte(doc), &e); err != nil {
			return fmt.Errorf("list change events: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list change events: %w", err)
	}
	return nil
}

// Event returns the change event with the given ID.
func (d *DB) Event(ctx context.Context, id int64) (store.ChangeEvent, error) {
	var doc string
	err := d.db.QueryRowContext(ctx, `SELECT doc FROM change_events WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ChangeEvent{}, fmt.Errorf("read change event %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.ChangeEvent{}, fmt.Errorf("read change event %d: %w", id, err)
	}
	var e store.ChangeEvent
	if err := json.Unmarshal([]byte(doc), &e); err != nil {
		return store.ChangeEvent{}, fmt.Errorf("read change event %d: %w", id, err)
	}
	return e, nil
}

// Review returns the review item with the given ID.
func (d *DB) Review(ctx context.Context, id string) (change.ReviewItem, error) {
	var doc string
	err := d.db.QueryRowContext(ctx, `SELECT doc FROM change_reviews WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return change.ReviewItem{}, fmt.Errorf("read review %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return change.ReviewItem{}, fmt.Errorf("read review %s: %w", id, err)
	}
	var it change.ReviewItem
	if err := json.Unmarshal([]byte(doc), &it); err != nil {
		return change.ReviewItem{}, fmt.Errorf("read review %s: %w", id, err)
	}
	return it, nil
}

// UpdateReview replaces prev by next if the stored item is still prev
// (store.ErrConflict otherwise).
func (d *DB) UpdateReview(ctx context.Context, prev, next change.ReviewItem) error {
	old, err := json.Marshal(prev)
	if err != nil {
		return fmt.Errorf("update review %s: %w", prev.ID, err)
	}
	doc, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("update review %s: %w", prev.ID, err)
	}
	res, err := d.db.ExecContext(ctx, `UPDATE change_reviews SET state = ?, doc = ? WHERE id = ? AND doc = ?`,
		string(next.State), string(doc), prev.ID, string(old))
	return casResult(res, err, "update review "+prev.ID, func() error {
		_, err := d.Review(ctx, prev.ID)
		return err
	})
}

// Reviews returns the review items in the given state ("" for all), in
// the order they were opened.
func (d *DB) Reviews(ctx context.Context, state change.ReviewState) ([]change.ReviewItem, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT doc FROM change_reviews WHERE ? = '' OR state = ? ORDER BY opened_ns, event_id`,
		string(state), string(state))
	if err != nil {
		return nil, fmt.Errorf("list reviews: %w", err)
	}
	defer rows.Close()
	var out []change.ReviewItem
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("list reviews: %w", err)
		}
		var it change.ReviewItem
		if err := json.Unmarshal([]byte(doc), &it); err != nil {
			return nil, fmt.Errorf("list reviews: %w", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list reviews: %w", err)
	}
	return out, nil
}

// OpenReviews returns the open review items of a path on a host, in the
// order they were opened.
func (d *DB) OpenReviews(ctx context.Context, host, path string) ([]change.ReviewItem, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT doc FROM change_reviews WHERE path = ? AND host = ? AND state = 'open' ORDER BY opened_ns, event_id`, []byte(path), host)
	if err != nil {
		return nil, fmt.Errorf("list open reviews of %s: %w", path, err)
	}
	defer rows.Close()
	var out []change.ReviewItem
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("list open reviews of %s: %w", path, err)
		}
		var it change.ReviewItem
		if err := json.Unmarshal([]byte(doc), &it); err != nil {
			return nil, fmt.Errorf("list open reviews of %s: %w", path, err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list open reviews of %s: %w", path, err)
	}
	return out, nil
}
