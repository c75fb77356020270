package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigilfim/vigil/internal/fleet"
)

// SetGroup implements fleet.Store.
func (d *DB) SetGroup(ctx context.Context, agentID, group string) (string, error) {
	defer d.writing()()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("set agent group: %w", err)
	}
	defer tx.Rollback()
	var old string
	err = tx.QueryRowContext(ctx, `SELECT grp FROM fleet_agents WHERE id = ?`, agentID).Scan(&old)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fleet.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("set agent group: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE fleet_agents SET grp = ? WHERE id = ?`, group, agentID); err != nil {
		return "", fmt.Errorf("set agent group: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("commit agent group: %w", err)
	}
	return old, nil
}

// Revoke implements fleet.Store.
func (d *DB) Revoke(ctx context.Context, agentID string, now time.Time) (fleet.Agent, bool, error) {
	defer d.writing()()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fleet.Agent{}, false, fmt.Errorf("revoke agent: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE fleet_agents SET revoked_ns = ? WHERE id = ? AND revoked_ns = 0`, now.UnixNano(), agentID)
	if err != nil {
		return fleet.Agent{}, false, fmt.Errorf("revoke agent: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fleet.Agent{}, false, fmt.Errorf("revoke agent: %w", err)
	}
	a, err := scanAgent(tx.QueryRowContext(ctx, `SELECT `+agentCols+` FROM fleet_agents WHERE id = ?`, agentID))
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, fleet.ErrNotFound
	}
	if err != nil {
		return a, false, fmt.Errorf("revoke agent: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return a, false, fmt.Errorf("commit revocation: %w", err)
	}
	return a, n == 1, nil
}

// PutPolicy implements fleet.Store.
func (d *DB) PutPolicy(ctx context.Context, p fleet.Policy) error {
	defer d.writing()()
	if _, err := d.db.ExecContext(ctx, `INSERT INTO fleet_policies (grp, version, source, signed, updated_ns, updated_by) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (grp) DO UPDATE SET version = excluded.version, source = excluded.source, signed = excluded.signed,
		updated_ns = excluded.updated_ns, updated_by = excluded.updated_by`,
		p.Group, p.Version, p.Source, p.Signed, p.Updated.UnixNano(), p.UpdatedBy); err != nil {
		return fmt.Errorf("store group policy: %w", err)
	}
	return nil
}

// GroupPolicy implements fleet.Store.
func (d *DB) GroupPolicy(ctx context.Context, group string) (fleet.Policy, error) {
	p := fleet.Policy{Group: group}
	var ns int64
	err := d.db.QueryRowContext(ctx, `SELECT version, source, signed, updated_ns, updated_by FROM fleet_policies WHERE grp = ?`, group).
		Scan(&p.Version, &p.Source, &p.Signed, &ns, &p.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fleet.ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("read group policy: %w", err)
	}
	p.Updated = time.Unix(0, ns).UTC()
	return p, nil
}

// AgentRecords implements fleet.Store.
func (d *DB) AgentRecords(ctx context.Context, agentID string, from, to uint64) ([]fleet.Record, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT seq, kind, time_ns, body FROM fleet_records WHERE agent_id = ? AND seq >= ? AND seq <= ? ORDER BY seq`,
		agentID, clamp(from), clamp(to))
	if err != nil {
		return nil, fmt.Errorf("read agent records: %w", err)
	}
	defer rows.Close()
	var out []fleet.Record
	for rows.Next() {
		var r fleet.Record
		var seq, tns int64
		var body []byte
		if err := rows.Scan(&seq, &r.Kind, &tns, &body); err != nil {
			return nil, fmt.Errorf("read agent records: %w", err)
		}
		r.Seq, r.Time, r.Body = uint64(seq), time.Unix(0, tns).UTC(), body
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read agent records: %w", err)
	}
	return out, nil
}
