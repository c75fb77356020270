package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfim/vigil/internal/fleet"
)

// SetGroup implements fleet.Store.
func (d *DB) SetGroup(ctx context.Context, agentID, group string) (string, error) {
	var old string
	err := d.pool.QueryRow(ctx, `UPDATE fleet_agents a SET grp = $1 FROM fleet_agents o WHERE a.id = $2 AND o.id = a.id RETURNING o.grp`,
		group, agentID).Scan(&old)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fleet.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("set agent group: %w", err)
	}
	return old, nil
}

// Revoke implements fleet.Store.
func (d *DB) Revoke(ctx context.Context, agentID string, now time.Time) (fleet.Agent, bool, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fleet.Agent{}, false, fmt.Errorf("revoke agent: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE fleet_agents SET revoked_ns = $1 WHERE id = $2 AND revoked_ns = 0`, now.UnixNano(), agentID)
	if err != nil {
		return fleet.Agent{}, false, fmt.Errorf("revoke agent: %w", err)
	}
	a, err := scanAgent(tx.QueryRow(ctx, `SELECT `+agentCols+` FROM fleet_agents WHERE id = $1`, agentID))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, false, fleet.ErrNotFound
	}
	if err != nil {
		return a, false, fmt.Errorf("revoke agent: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return a, false, fmt.Errorf("commit revocation: %w", err)
	}
	return a, tag.RowsAffected() == 1, nil
}

// PutPolicy implements fleet.Store.
func (d *DB) PutPolicy(ctx context.Context, p fleet.Policy) error {
	if _, err := d.pool.Exec(ctx, `INSERT INTO fleet_policies (grp, version, source, signed, updated_ns, updated_by) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (grp) DO UPDATE SET version = EXCLUDED.version, source = EXCLUDED.source, signed = EXCLUDED.signed,
		updated_ns = EXCLUDED.updated_ns, updated_by = EXCLUDED.updated_by`,
		p.Group, p.Version, p.Source, p.Signed, p.Updated.UnixNano(), p.UpdatedBy); err != nil {
		return fmt.Errorf("store group policy: %w", err)
	}
	return nil
}

// GroupPolicy implements fleet.Store.
func (d *DB) GroupPolicy(ctx context.Context, group string) (fleet.Policy, error) {
	p := fleet.Policy{Group: group}
	var ns int64
	err := d.pool.QueryRow(ctx, `SELECT version, source, signed, updated_ns, updated_by FROM fleet_policies WHERE grp = $1`, group).
		Scan(&p.Version, &p.Source, &p.Signed, &ns, &p.UpdatedBy)
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := d.pool.Query(ctx, `SELECT seq, kind, time_ns, body FROM fleet_records WHERE agent_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq`,
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
