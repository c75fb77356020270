package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigilfim/vigil/internal/fleet"
)

var _ fleet.Store = (*DB)(nil)

// CreateUser implements fleet.Store.
func (d *DB) CreateUser(ctx context.Context, u fleet.User, tokenHash []byte) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO fleet_users (name, role) VALUES ($1, $2)`, u.Name, string(u.Role)); err != nil {
		if isDuplicate(err) {
			return fmt.Errorf("create user %s: %w", u.Name, fleet.ErrExists)
		}
		return fmt.Errorf("create user: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO fleet_api_tokens (hash, usr) VALUES ($1, $2)`, tokenHash, u.Name); err != nil {
		return fmt.Errorf("create user token: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit user: %w", err)
	}
	return nil
}

// UserByToken implements fleet.Store.
func (d *DB) UserByToken(ctx context.Context, tokenHash []byte) (fleet.User, error) {
	var u fleet.User
	var role string
	err := d.pool.QueryRow(ctx, `SELECT u.name, u.role FROM fleet_api_tokens t JOIN fleet_users u ON u.name = t.usr WHERE t.hash = $1`, tokenHash).Scan(&u.Name, &role)
	if errors.Is(err, pgx.ErrNoRows) {
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
	if err := d.pool.QueryRow(ctx, `SELECT COUNT(*) FROM fleet_users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// CreateEnrollToken implements fleet.Store.
func (d *DB) CreateEnrollToken(ctx context.Context, t fleet.EnrollToken) error {
	if _, err := d.pool.Exec(ctx, `INSERT INTO fleet_enroll_tokens (hash, grp, expires_ns, creator) VALUES ($1, $2, $3, $4)`,
		t.Hash, t.Group, t.Expires.UnixNano(), t.Creator); err != nil {
		return fmt.Errorf("create enrolment token: %w", err)
	}
	return nil
}

// Enroll implements fleet.Store.
func (d *DB) Enroll(ctx context.Context, tokenHash []byte, now time.Time, a fleet.Agent) (fleet.Agent, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return a, fmt.Errorf("enroll: %w", err)
	}
	defer tx.Rollback(ctx)
	res, err := tx.Exec(ctx, `UPDATE fleet_enroll_tokens SET used_by = $1 WHERE hash = $2 AND used_by IS NULL AND expires_ns > $3`,
		a.ID, tokenHash, now.UnixNano())
	if err != nil {
		return a, fmt.Errorf("consume enrolment token: %w", err)
	}
	if res.RowsAffected() != 1 {
		return a, fleet.ErrTokenInvalid
	}
	if err := tx.QueryRow(ctx, `SELECT grp FROM fleet_enroll_tokens WHERE hash = $1`, tokenHash).Scan(&a.Group); err != nil {
		return a, fmt.Errorf("read enrolment token: %w", err)
	}
	a.Enrolled, a.LastSeen = now, now
	if _, err := tx.Exec(ctx, `INSERT INTO fleet_agents (id, host, grp, cert_serial, enrolled_ns, last_seen_ns) VALUES ($1, $2, $3, $4, $5, $6)`,
		a.ID, a.Host, a.Group, a.CertSerial, now.UnixNano(), now.UnixNano()); err != nil {
		return a, fmt.Errorf("create agent: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return a, fmt.Errorf("commit enrolment: %w", err)
	}
	return a, nil
}

// SetCertSerial implements fleet.Store.
func (d *DB) SetCertSerial(ctx context.Context, agentID, serial string) error {
	res, err := d.pool.Exec(ctx, `UPDATE fleet_agents SET cert_serial = $1 WHERE id = $2`, serial, agentID)
	if err != nil {
		return fmt.Errorf("set certificate serial: %w", err)
	}
	if res.RowsAffected() != 1 {
		return fleet.ErrNotFound
	}
	return nil
}

const agentCols = `id, host, grp, cert_serial, enrolled_ns, last_seen_ns, high_water, silent, version, policy_version, baseline_state, watcher_backend, watcher_health, spool_depth, revoked_ns`

func scanAgent(sc interface{ Scan(...any) error }) (fleet.Agent, error) {
	var a fleet.Agent
	var enr, seen, hw, rev int64
	var silent bool
	err := sc.Scan(&a.ID, &a.Host, &a.Group, &a.CertSerial, &enr, &seen, &hw, &silent,
		&a.Version, &a.PolicyVersion, &a.BaselineState, &a.WatcherBackend, &a.WatcherHealth, &a.SpoolDepth, &rev)
	a.Enrolled, a.LastSeen = time.Unix(0, enr).UTC(), time.Unix(0, seen).UTC()
	if rev != 0 {
		a.Revoked = time.Unix(0, rev).UTC()
	}
	a.HighWater, a.Silent = uint64(hw), silent
	return a, err
}

// Agent implements fleet.Store.
func (d *DB) Agent(ctx context.Context, id string) (fleet.Agent, error) {
	a, err := scanAgent(d.pool.QueryRow(ctx, `SELECT `+agentCols+` FROM fleet_agents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := d.pool.Query(ctx, q, args...)
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
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("heartbeat: %w", err)
	}
	defer tx.Rollback(ctx)
	var silent bool
	if err := tx.QueryRow(ctx, `SELECT silent FROM fleet_agents WHERE id = $1 FOR UPDATE`, id).Scan(&silent); errors.Is(err, pgx.ErrNoRows) {
		return false, fleet.ErrNotFound
	} else if err != nil {
		return false, fmt.Errorf("heartbeat: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE fleet_agents SET last_seen_ns = $1, silent = FALSE, version = $2, policy_version = $3, baseline_state = $4, watcher_backend = $5, watcher_health = $6, spool_depth = $7 WHERE id = $8`,
		now.UnixNano(), s.Version, s.PolicyVersion, s.BaselineState, s.WatcherBackend, s.WatcherHealth, s.SpoolDepth, id); err != nil {
		return false, fmt.Errorf("heartbeat: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit heartbeat: %w", err)
	}
	return silent, nil
}

// MarkSilent implements fleet.Store.
func (d *DB) MarkSilent(ctx context.Context, cutoff time.Time) ([]fleet.Agent, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("mark silent: %w", err)
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `UPDATE fleet_agents SET silent = TRUE WHERE silent = FALSE AND last_seen_ns < $1 RETURNING `+agentCols, cutoff.UnixNano())
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
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit silent: %w", err)
	}
	return out, nil
}

// Ingest implements fleet.Store in three round trips whatever the number
// of batches: lock and read every agent's mark at once (in id order, so two
// hubs never deadlock), COPY all new records, move all marks with one
// UPDATE ... FROM unnest. Per-batch round trips made the group commit
// latency-bound (see `go run ./bench/fleet load -db postgres://...`).
func (d *DB) Ingest(ctx context.Context, now time.Time, batches []fleet.Batch) ([]fleet.IngestResult, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	defer tx.Rollback(ctx)
	ids := make([]string, 0, len(batches))
	for _, b := range batches {
		ids = append(ids, b.AgentID)
	}
	rows, err := tx.Query(ctx, `SELECT id, high_water FROM fleet_agents WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, fmt.Errorf("ingest: read high-water marks: %w", err)
	}
	marks := make(map[string]uint64, len(batches))
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
	var copyRows [][]any
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
			r := &recs[j]
			copyRows = append(copyRows, []any{b.AgentID, int64(r.Seq), r.Kind, r.Time.UnixNano(), []byte(r.Body)})
		}
	}
	if len(copyRows) > 0 {
		// Records commit in RID order even with several hubs: the relay
		// reads RIDs past its cursor, so a record whose RID was drawn
		// before another's but committed after it would be skipped. Taken
		// after the row locks on the marks and held to commit, the lock
		// serialises only the COPY and the commit, and cannot deadlock
		// with them.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('vigil.ingest.' || current_schema()))`); err != nil {
			return nil, fmt.Errorf("ingest: lock record order: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"fleet_records"}, []string{"agent_id", "seq", "kind", "time_ns", "body"},
			pgx.CopyFromRows(copyRows)); err != nil {
			return nil, fmt.Errorf("ingest: insert records: %w", err)
		}
		var mids []string
		var mhws []int64
		for i, b := range batches {
			if out[i].Err == nil {
				mids = append(mids, b.AgentID)
				mhws = append(mhws, int64(marks[b.AgentID]))
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE fleet_agents a SET high_water = m.hw, last_seen_ns = $3
			FROM (SELECT DISTINCT ON (id) id, hw FROM unnest($1::text[], $2::bigint[]) AS u(id, hw) ORDER BY id, hw DESC) m
			WHERE a.id = m.id`, mids, mhws, now.UnixNano()); err != nil {
			return nil, fmt.Errorf("ingest: move high-water marks: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit ingest: %w", err)
	}
	return out, nil
}

// RecordsAfter implements fleet.Store.
func (d *DB) RecordsAfter(ctx context.Context, rid int64, limit int) ([]fleet.StoredRecord, error) {
	rows, err := d.pool.Query(ctx, `SELECT r.rid, r.agent_id, a.host, r.seq, r.kind, r.time_ns, r.body
		FROM fleet_records r JOIN fleet_agents a ON a.id = r.agent_id WHERE r.rid > $1 ORDER BY r.rid LIMIT $2`, rid, limit)
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
	if err := d.pool.QueryRow(ctx, `SELECT COUNT(*) FROM fleet_records WHERE agent_id = $1`, agentID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count records: %w", err)
	}
	return n, nil
}

// Cursor implements fleet.Store; an unset cursor is 0.
func (d *DB) Cursor(ctx context.Context, name string) (int64, error) {
	var v int64
	err := d.pool.QueryRow(ctx, `SELECT v FROM fleet_cursors WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cursor %s: %w", name, err)
	}
	return v, nil
}

// SetCursor implements fleet.Store.
func (d *DB) SetCursor(ctx context.Context, name string, v int64) error {
	if _, err := d.pool.Exec(ctx, `INSERT INTO fleet_cursors (name, v) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET v = EXCLUDED.v`, name, v); err != nil {
		return fmt.Errorf("set cursor %s: %w", name, err)
	}
	return nil
}

// isDuplicate reports a unique-constraint violation.
func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
