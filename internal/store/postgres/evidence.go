package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfim/vigil/internal/evidence"
)

var _ evidence.Store = (*DB)(nil)

func clamp(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// LogSize returns the number of committed leaves.
func (d *DB) LogSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := d.pool.QueryRow(ctx, `SELECT size FROM evidence_head WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read evidence head: %w", err)
	}
	return uint64(n), nil
}

// AppendLeaves implements evidence.LeafStore. The head row's
// compare-and-set takes a row lock, so concurrent appenders (several hubs)
// serialise on it and the loser sees ErrConflict; rows go in with COPY.
func (d *DB) AppendLeaves(ctx context.Context, size uint64, leaves []evidence.StoredLeaf, nodes []evidence.Node) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin append: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE evidence_head SET size = $1 WHERE id = 1 AND size = $2`,
		int64(size)+int64(len(leaves)), int64(size))
	if err != nil {
		return fmt.Errorf("move evidence head: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("append at %d: %w", size, evidence.ErrConflict)
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"evidence_leaves"}, []string{"idx", "kind", "time_ns", "leaf", "hash"},
		pgx.CopyFromSlice(len(leaves), func(i int) ([]any, error) {
			l := &leaves[i]
			return []any{int64(l.Index), l.Kind, l.TimeNS, l.Leaf, l.Hash}, nil
		}))
	if err != nil {
		return fmt.Errorf("insert leaves: %w", err)
	}
	if len(nodes) > 0 {
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"evidence_nodes"}, []string{"level", "idx", "hash"},
			pgx.CopyFromSlice(len(nodes), func(i int) ([]any, error) {
				n := &nodes[i]
				return []any{int32(n.ID.Level), int64(n.ID.Index), n.Hash}, nil
			}))
		if err != nil {
			return fmt.Errorf("insert nodes: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit append: %w", err)
	}
	return nil
}

// Nodes implements evidence.NodeReader in one round trip.
func (d *DB) Nodes(ctx context.Context, ids []evidence.NodeID) ([][]byte, error) {
	levels := make([]int32, len(ids))
	idxs := make([]int64, len(ids))
	for i, id := range ids {
		levels[i], idxs[i] = int32(id.Level), clamp(id.Index)
	}
	rows, err := d.pool.Query(ctx, `
		SELECT n.ord, CASE WHEN n.level = 0 THEN l.hash ELSE nd.hash END
		FROM unnest($1::integer[], $2::bigint[]) WITH ORDINALITY AS n(level, idx, ord)
		LEFT JOIN evidence_leaves l ON n.level = 0 AND l.idx = n.idx
		LEFT JOIN evidence_nodes nd ON n.level > 0 AND nd.level = n.level AND nd.idx = n.idx
		ORDER BY n.ord`, levels, idxs)
	if err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	defer rows.Close()
	out := make([][]byte, len(ids))
	for rows.Next() {
		var ord int64
		var h []byte
		if err := rows.Scan(&ord, &h); err != nil {
			return nil, fmt.Errorf("read nodes: %w", err)
		}
		if ord < 1 || ord > int64(len(ids)) {
			return nil, fmt.Errorf("read nodes: unexpected ordinal %d", ord)
		}
		out[ord-1] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read nodes: %w", err)
	}
	for i, h := range out {
		if h == nil {
			return nil, fmt.Errorf("node (level %d, index %d): %w", ids[i].Level, ids[i].Index, evidence.ErrNotFound)
		}
	}
	return out, nil
}

// ScanLeaves implements evidence.LeafScanner.
func (d *DB) ScanLeaves(ctx context.Context, from, to uint64, fn func(*evidence.StoredLeaf) error) error {
	if from >= to {
		return nil
	}
	rows, err := d.pool.Query(ctx,
		`SELECT idx, kind, time_ns, leaf, hash FROM evidence_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx`,
		clamp(from), clamp(to))
	if err != nil {
		return fmt.Errorf("scan leaves: %w", err)
	}
	return scanLeafRows(rows, fn)
}

// ScanKind implements evidence.KindScanner.
func (d *DB) ScanKind(ctx context.Context, kind string, fn func(*evidence.StoredLeaf) error) error {
	rows, err := d.pool.Query(ctx,
		`SELECT idx, kind, time_ns, leaf, hash FROM evidence_leaves WHERE kind = $1 ORDER BY idx`, kind)
	if err != nil {
		return fmt.Errorf("scan kind %s: %w", kind, err)
	}
	return scanLeafRows(rows, fn)
}

func scanLeafRows(rows pgx.Rows, fn func(*evidence.StoredLeaf) error) error {
	defer rows.Close()
	var l evidence.StoredLeaf
	var idx int64
	for rows.Next() {
		if err := rows.Scan(&idx, &l.Kind, &l.TimeNS, &l.Leaf, &l.Hash); err != nil {
			return fmt.Errorf("scan leaf row: %w", err)
		}
		l.Index = uint64(idx)
		if err := fn(&l); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan leaves: %w", err)
	}
	return nil
}

// AddCheckpoint implements evidence.CheckpointStore.
func (d *DB) AddCheckpoint(ctx context.Context, size uint64, note []byte, created time.Time) error {
	_, err := d.pool.Exec(ctx, `INSERT INTO evidence_checkpoints (size, created_ns, note) VALUES ($1, $2, $3)`,
		clamp(size), created.UnixNano(), note)
	if err != nil {
		return fmt.Errorf("add checkpoint: %w", err)
	}
	return nil
}

// LatestCheckpoint implements evidence.CheckpointStore.
func (d *DB) LatestCheckpoint(ctx context.Context) (evidence.StoredCheckpoint, error) {
	var c evidence.StoredCheckpoint
	var seq, size, created int64
	err := d.pool.QueryRow(ctx,
		`SELECT seq, size, created_ns, note FROM evidence_checkpoints ORDER BY seq DESC LIMIT 1`).
		Scan(&seq, &size, &created, &c.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("latest checkpoint: %w", evidence.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("latest checkpoint: %w", err)
	}
	c.Seq, c.Size, c.Created = uint64(seq), uint64(size), time.Unix(0, created).UTC()
	return c, nil
}

// ScanCheckpoints implements evidence.CheckpointStore.
func (d *DB) ScanCheckpoints(ctx context.Context, afterSeq uint64, limit int, fn func(evidence.StoredCheckpoint) error) error {
	rows, err := d.pool.Query(ctx,
		`SELECT seq, size, created_ns, note FROM evidence_checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2`,
		clamp(afterSeq), limit)
	if err != nil {
		return fmt.Errorf("scan checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c evidence.StoredCheckpoint
		var seq, size, created int64
		if err := rows.Scan(&seq, &size, &created, &c.Note); err != nil {
			return fmt.Errorf("scan checkpoint row: %w", err)
		}
		c.Seq, c.Size, c.Created = uint64(seq), uint64(size), time.Unix(0, created).UTC()
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan checkpoints: %w", err)
	}
	return nil
}

// PruneLeaves implements evidence.PayloadPruner.
func (d *DB) PruneLeaves(ctx context.Context, below uint64, beforeNS int64, dryRun bool) (uint64, error) {
	const where = ` FROM evidence_leaves WHERE idx < $1 AND time_ns < $2 AND kind <> 'prune' AND leaf IS NOT NULL`
	if dryRun {
		var n int64
		if err := d.pool.QueryRow(ctx, `SELECT COUNT(*)`+where, clamp(below), beforeNS).Scan(&n); err != nil {
			return 0, fmt.Errorf("count prunable payloads: %w", err)
		}
		return uint64(n), nil
	}
	tag, err := d.pool.Exec(ctx,
		`UPDATE evidence_leaves SET leaf = NULL WHERE idx < $1 AND time_ns < $2 AND kind <> 'prune' AND leaf IS NOT NULL`,
		clamp(below), beforeNS)
	if err != nil {
		return 0, fmt.Errorf("prune payloads: %w", err)
	}
	return uint64(tag.RowsAffected()), nil
}
