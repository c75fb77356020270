package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigilfim/vigil/internal/fleet"
)

var _ fleet.Store = (*DB)(nil)

// CreateUser implements fleet.Store.
func (d *DB) CreateUser(ctx context.Context, u fleet.User, tokenHash []byte) error {
	defer d.writing()()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_users (name, role) VALUES (?, ?)`, u.Name, string(u.Role)); err != nil {
		if isDuplicate(err) {
			return fmt.Errorf("create user %s: %w", u.Name, fleet.ErrExists)
		}
		return fmt.Errorf("create user: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_api_tokens (hash, usr) VALUES (?, ?)`, tokenHash, u.Name); err != nil {
		return fmt.Errorf("create user token: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit user: %w", err)
	}
	return nil
}

// UserByToken implements fleet.Store.
func (d *DB) UserByToken(ctx context.Context, tokenHash []byte) (fleet.User, error) {
	var u fleet.User
	var role string
	err := d.db.QueryRowContext(ctx, `SELECT u.name, u.role FROM fleet_api_tokens t JOIN fleet_users u ON u.name = t.usr WHERE t.hash = ?`, tokenHash).Scan(&u.Name, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fleet.ErrTokenInvalid
	}
	if err != nil {
		return u, fmt.Errorf("look up token: %w", err)
	}
	u.Role = fleet.Role(role)
	return u, nil
}

// UserCount implements fleet.Store.
func (d *DB) UserCount(ctx context.Context) (int, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM fleet_users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// CreateEnrollToken implements fleet.Store.
func (d *DB) CreateEnrollToken(ctx context.Context, t fleet.EnrollToken) error {
	defer d.writing()()
	if _, err := d.db.ExecContext(ctx, `INSERT INTO fleet_enroll_tokens (hash, grp, expires_ns, creator) VALUES (?, ?, ?, ?)`,
		t.Hash, t.Group, t.Expires.UnixNano(), t.Creator); err != nil {
		return fmt.Errorf("create enrolment token: %w", err)
	}
	return nil
}

// Enroll implements fleet.Store.
func (d *DB) Enroll(ctx context.Context, tokenHash []byte, now time.Time, a fleet.Agent) (fleet.Agent, error) {
	defer d.writing()()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return a, fmt.Errorf("enroll: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE fleet_enroll_tokens SET used_by = ? WHERE hash = ? AND used_by IS NULL AND expires_ns > ?`,
		a.ID, tokenHash, now.UnixNano())
	if err != nil {
		return a, fmt.Errorf("consume enrolment token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return a, fmt.Errorf("consume enrolment token: %w", err)
	} else if n != 1 {
		return a, fleet.ErrTokenInvalid
	}
	if err := tx.QueryRowContext(ctx, `SELECT grp FROM fleet_enroll_tokens WHERE hash = ?`, tokenHash).Scan(&a.Group); err != nil {
		return a, fmt.Errorf("read enrolment token: %w", err)
	}
	a.Enrolled, a.LastSeen = now, now
	if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_agents (id, host, grp, cert_serial, enrolled_ns, last_seen_ns) VALUES (?, ?, ?, ?, ?, ?)`,
		a.ID, a.Host, a.Group, a.CertSerial, now.UnixNano(), now.UnixNano()); err != nil {
		return a, fmt.Errorf("create agent: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return a, fmt.Errorf("commit enrolment: %w", err)
	}
	return a, nil
}

// SetCertSerial implements fleet.Store.
func (d *DB) SetCertSerial(ctx context.Context, agentID, serial string) error {
	defer d.writing()()
	res, err := d.db.ExecContext(ctx, `UPDATE fleet_agents SET cert_serial = ? WHERE id = ?`, serial, agentID)
	if err != nil {
		return fmt.Errorf("set certificate serial: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fleet.ErrNotFound
	}
	return nil
}

const agentCols = `id, host, grp, cert_serial, enrolled_ns, last_seen_ns, high_water, silent, version, policy_version, baseline_state, watcher_backend, watcher_health, spool_depth, revoked_ns`

func scanAgent(sc interface{ Scan(...any) error }) (fleet.Agent, error) {
	var a fleet.Agent
	var enr, seen, hw, rev int64
	var silent int
	err := sc.Scan(&a.ID, &a.Host, &a.Group, &a.CertSerial, &enr, &seen, &hw, &silent,
		&a.Version, &a.PolicyVersion, &a.BaselineState, &a.WatcherBackend, &a.WatcherHealth, &a.SpoolDepth, &rev)
	a.Enrolled, a.LastSeen = time.Unix(0, enr).UTC(), time.Unix(0, seen).UTC()
	if rev != 0 {
		a.Revoked = time.Unix(0, rev).UTC()
	}
	a.HighWater, a.Silent = uint64(hw), silent != 0
	return a, err
}

// Agent implements fleet.Store.
func (d *DB) Agent(ctx context.Context, id string) (fleet.Agent, error) {
	a, err := scanAgent(d.db.QueryRowContext(ctx, `SELECT `+agentCols+` FROM fleet_agents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fleet.ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("read agent: %w", err)
	}
	return a, nil
}

// Agents implements fleet.Store.
func (d *DB) Agents(ctx context.Context) ([]fleet.Agent, error) {
	return d.queryAgents(ctx, `SELECT `+agentCols+` FROM fleet_agents ORDER BY host, id`)
}

func (d *DB) queryAgents(ctx context.Context, q string, args ...any) ([]fleet.Agent, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []fleet.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// Heartbeat implements fleet.Store.
func (d *DB) Heartbeat(ctx context.Context, id string, now time.Time, s fleet.Status) (bool, error) {
	defer d.writing()()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("heartbeat: %w", err)
	}
	defer tx.Rollback()
	var silent int
	if err := tx.QueryRowContext(ctx, `SELECT silent FROM fleet_agents WHERE id = ?`, id).Scan(&silent); errors.Is(err, sql.ErrNoRows) {
		return false, fleet.ErrNotFound
	} else if err != nil {
		return false, fmt.Errorf("heartbeat: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE fleet_agents SET last_seen_ns = ?, silent = 0, version = ?, policy_version = ?, baseline_state = ?, watcher_backend = ?, watcher_health = ?, spool_depth = ? WHERE id = ?`,
		now.UnixNano(), s.Version, s.PolicyVersion, s.BaselineState, s.WatcherBackend, s.WatcherHealth, s.SpoolDepth, id); err != nil {
		return false, fmt.Errorf("heartbeat: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit heartbeat: %w", err)
	}
	return silent != 0, nil
}

// MarkSilent implements fleet.Store.
func (d *DB) MarkSilent(ctx context.Context, cutoff time.Time) ([]fleet.Agent, error) {
	defer d.writing()()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("mark silent: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `UPDATE fleet_agents SET silent = 1 WHERE silent = 0 AND last_seen_ns < ? RETURNING `+agentCols, cutoff.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("mark silent: %w", err)
	}
	var out []fleet.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("mark silent: %w", err)
		}
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mark silent: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit silent: %w", err)
	}
	return out, nil
}

// Ingest implements fleet.Store with a fixed number of statements per
// group rather than per batch: one read of every agent's mark, multi-row
// INSERTs of all new records, one UPDATE of all marks. Each statement
// through database/sql costs CPU that a thousand agents' batches multiply.
func (d *DB) Ingest(ctx context.Context, now time.Time, batches []fleet.Batch) ([]fleet.IngestResult, error) {
	defer d.writing()()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	defer tx.Rollback()
	marks := make(map[string]uint64, len(batches))
	var ids []any
	for _, b := range batches {
		if _, ok := marks[b.AgentID]; !ok {
			marks[b.AgentID] = 0
			ids = append(ids, b.AgentID)
		}
	}
	clear(marks)
	rows, err := tx.QueryContext(ctx, `SELECT id, high_water FROM fleet_agents WHERE id IN (`+placeholders(len(ids), "?")+`)`, ids...)
	if err != nil {
		return nil, fmt.Errorf("ingest: read high-water marks: %w", err)
	}
	for rows.Next() {
		var id string
		var hw int64
		if err := rows.Scan(&id, &hw); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ingest: read high-water marks: %w", err)
		}
		marks[id] = uint64(hw)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ingest: read high-water marks: %w", err)
	}
	out := make([]fleet.IngestResult, len(batches))
	type row struct {
		agent string
		rec   *fleet.Record
	}
	var all []row
	var moved []any
	for i, b := range batches {
		hw, ok := marks[b.AgentID]
		if !ok {
			out[i].Err = fleet.ErrNotFound
			continue
		}
		// Two batches of one agent in a group apply in order.
		recs, res := fleet.NewRecords(hw, b.Records)
		out[i] = res
		if res.Err != nil {
			continue
		}
		marks[b.AgentID] = res.HighWater
		for j := range recs {
			all = append(all, row{b.AgentID, &recs[j]})
		}
	}
	if len(all) > 0 {
		if err := insertRows(ctx, tx, "INSERT INTO fleet_records (agent_id, seq, kind, time_ns, body) VALUES ", 5, len(all),
			func(j int, args []any) []any {
				r := all[j].rec
				return append(args, all[j].agent, int64(r.Seq), r.Kind, r.Time.UnixNano(), []byte(r.Body))
			}); err != nil {
			return nil, fmt.Errorf("ingest: insert records: %w", err)
		}
		seen := make(map[string]bool, len(ids))
		for _, r := range all {
			if !seen[r.agent] {
				seen[r.agent] = true
				moved = append(moved, r.agent, int64(marks[r.agent]))
			}
		}
		// UPDATE ... FROM joins each value row to its agent by primary
		// key; a correlated subquery over the VALUES was quadratic in the
		// group's agents and had made a commit of a thousand agents'
		// batches take ~70 ms of CPU.
		q := `WITH v(id, hw) AS (VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?),", len(moved)/2), ",") + `)
			UPDATE fleet_agents SET high_water = v.hw, last_seen_ns = ? FROM v WHERE fleet_agents.id = v.id`
		if _, err := tx.ExecContext(ctx, q, append(moved, now.UnixNano())...); err != nil {
			return nil, fmt.Errorf("ingest: move high-water marks: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit ingest: %w", err)
	}
	return out, nil
}

// RecordsAfter implements fleet.Store.
func (d *DB) RecordsAfter(ctx context.Context, rid int64, limit int) ([]fleet.StoredRecord, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT r.rid, r.agent_id, a.host, r.seq, r.kind, r.time_ns, r.body
		FROM fleet_records r JOIN fleet_agents a ON a.id = r.agent_id WHERE r.rid > ? ORDER BY r.rid LIMIT ?`, rid, limit)
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	defer rows.Close()
	var out []fleet.StoredRecord
	for rows.Next() {
		var r fleet.StoredRecord
		var seq, tns int64
		var body []byte
		if err := rows.Scan(&r.RID, &r.AgentID, &r.Host, &seq, &r.Kind, &tns, &body); err != nil {
			return nil, fmt.Errorf("read records: %w", err)
		}
		r.Seq, r.Time, r.Body = uint64(seq), time.Unix(0, tns).UTC(), body
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	return out, nil
}

// RecordCount implements fleet.Store.
func (d *DB) RecordCount(ctx context.Context, agentID string) (int64, error) {
	var n int64
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM fleet_records WHERE agent_id = ?`, agentID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count records: %w", err)
	}
	return n, nil
}

// Cursor implements fleet.Store; an unset cursor is 0.
func (d *DB) Cursor(ctx context.Context, name string) (int64, error) {
	var v int64
	err := d.db.QueryRowContext(ctx, `SELECT v FROM fleet_cursors WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cursor %s: %w", name, err)
	}
	return v, nil
}

// SetCursor implements fleet.Store.
func (d *DB) SetCursor(ctx context.Context, name string, v int64) error {
	defer d.writing()()
	if _, err := d.db.ExecContext(ctx, `INSERT INTO fleet_cursors (name, v) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET v = excluded.v`, name, v); err != nil {
		return fmt.Errorf("set cursor %s: %w", name, err)
	}
	return nil
}

// isDuplicate reports a unique-constraint violation.
func isDuplicate(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
