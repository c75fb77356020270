package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
)

var _ evidence.Store = (*DB)(nil)

// clamp maps an exclusive uint64 bound to SQLite's int64 integers.
func clamp(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// LogSize returns the number of committed leaves.
func (d *DB) LogSize(ctx context.Context) (uint64, error) {
	var n int64
	if err := d.db.QueryRowContext(ctx, `SELECT size FROM evidence_head WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read evidence head: %w", err)
	}
	return uint64(n), nil
}

// rowsPerInsert is how many rows one multi-row INSERT carries: fewer
// statements per batch is most of the append throughput with this driver,
// and 200 rows x 5 columns stays far below SQLite's variable limit.
const rowsPerInsert = 200

// AppendLeaves implements evidence.LeafStore.
func (d *DB) AppendLeaves(ctx context.Context, size uint64, leaves []evidence.StoredLeaf, nodes []evidence.Node) error {
	defer d.writing()()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin append: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE evidence_head SET size = ? WHERE id = 1 AND size = ?`,
		int64(size)+int64(len(leaves)), int64(size))
	if err != nil {
		return fmt.Errorf("move evidence head: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("move evidence head: %w", err)
	} else if n != 1 {
		return fmt.Errorf("append at %d: %w", size, evidence.ErrConflict)
	}
	if err := insertRows(ctx, tx, "INSERT INTO evidence_leaves (idx, kind, time_ns, leaf, hash) VALUES ", 5, len(leaves),
		func(i int, args []any) []any {
			l := &leaves[i]
			return append(args, int64(l.Index), l.Kind, l.TimeNS, l.Leaf, l.Hash)
		}); err != nil {
		return fmt.Errorf("insert leaves: %w", err)
	}
	if err := insertRows(ctx, tx, "INSERT INTO evidence_nodes (level, idx, hash) VALUES ", 3, len(nodes),
		func(i int, args []any) []any {
			n := &nodes[i]
			return append(args, int64(n.ID.Level), int64(n.ID.Index), n.Hash)
		}); err != nil {
		return fmt.Errorf("insert nodes: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit append: %w", err)
	}
	return nil
}

// insertRows inserts n rows of cols columns with multi-row INSERTs.
func insertRows(ctx context.Context, tx *sql.Tx, prefix string, cols, n int, row func(i int, args []any) []any) error {
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, rowsPerInsert*cols)
	for start := 0; start < n; start += rowsPerInsert {
		end := min(start+rowsPerInsert, n)
		args = args[:0]
		for i := start; i < end; i++ {
			args = row(i, args)
		}
		var err error
		if end-start == rowsPerInsert {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insertSQL(prefix, cols, rowsPerInsert)); err != nil {
					return err
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSQL(prefix, cols, end-start), args...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func insertSQL(prefix string, cols, rows int) string {
	var b strings.Builder
	b.WriteString(prefix)
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tuple)
	}
	return b.String()
}

// Nodes implements evidence.NodeReader with at most two queries (leaf
// hashes, interior nodes): a proof's 20-40 nodes cost two round trips
// through database/sql instead of one each.
func (d *DB) Nodes(ctx context.Context, ids []evidence.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	var leafArgs, nodeArgs []any
	for _, id := range ids {
		if id.Level == 0 {
			leafArgs = append(leafArgs, clamp(id.Index))
		} else {
			nodeArgs = append(nodeArgs, int64(id.Level), clamp(id.Index))
		}
	}
	type key struct {
		level uint
		index uint64
	}
	found := make(map[key][]byte, len(ids))
	collect := func(query string, args []any, level0 bool) error {
		stmt, err := d.stmt(ctx, query)
		if err != nil {
			return err
		}
		rows, err := stmt.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var level, idx int64
			var h []byte
			if level0 {
				err = rows.Scan(&idx, &h)
			} else {
				err = rows.Scan(&level, &idx, &h)
			}
			if err != nil {
				return err
			}
			found[key{uint(level), uint64(idx)}] = h
		}
		return rows.Err()
	}
	if len(leafArgs) > 0 {
		q := `SELECT idx, hash FROM evidence_leaves WHERE idx IN (` + placeholders(len(leafArgs), "?") + `)`
		if err := collect(q, leafArgs, true); err != nil {
			return nil, fmt.Errorf("read leaf hashes: %w", err)
		}
	}
	if len(nodeArgs) > 0 {
		q := `SELECT level, idx, hash FROM evidence_nodes WHERE (level, idx) IN (VALUES ` + placeholders(len(nodeArgs)/2, "(?,?)") + `)`
		if err := collect(q, nodeArgs, false); err != nil {
			return nil, fmt.Errorf("read nodes: %w", err)
		}
	}
	for i, id := range ids {
		h, ok := found[key{id.Level, id.Index}]
		if !ok || id.Index > math.MaxInt64 {
			return nil, fmt.Errorf("node (level %d, index %d): %w", id.Level, id.Index, evidence.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// stmt returns a prepared statement for query, preparing it once. Proof
// queries come in a few dozen shapes (by node count), so the cache stays
// small, and skipping SQLite's parse and plan is most of a proof's cost.
func (d *DB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := d.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := d.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if old, loaded := d.stmts.LoadOrStore(query, s); loaded {
		s.Close()
		return old.(*sql.Stmt), nil
	}
	return s, nil
}

func placeholders(n int, p string) string {
	return strings.TrimSuffix(strings.Repeat(p+",", n), ",")
}

// ScanLeaves implements evidence.LeafScanner.
func (d *DB) ScanLeaves(ctx context.Context, from, to uint64, fn func(*evidence.StoredLeaf) error) error {
	if from >= to {
		return nil
	}
	rows, err := d.db.QueryContext(ctx,
		`SELECT idx, kind, time_ns, leaf, hash FROM evidence_leaves WHERE idx >= ? AND idx < ? ORDER BY idx`,
		clamp(from), clamp(to))
	if err != nil {
		return fmt.Errorf("scan leaves: %w", err)
	}
	return scanLeafRows(rows, fn)
}

// ScanKind implements evidence.KindScanner. The kind is inlined as a
// literal (it is checked to be [a-z0-9_]) so that SQLite can use the
// partial index on prune records.
func (d *DB) ScanKind(ctx context.Context, kind string, fn func(*evidence.StoredLeaf) error) error {
	for _, c := range kind {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') || kind == "" {
			return fmt.Errorf("scan kind %q: invalid kind", kind)
		}
	}
	rows, err := d.db.QueryContext(ctx,
		`SELECT idx, kind, time_ns, leaf, hash FROM evidence_leaves WHERE kind = '`+kind+`' ORDER BY idx`)
	if err != nil {
		return fmt.Errorf("scan kind %s: %w", kind, err)
	}
	return scanLeafRows(rows, fn)
}

func scanLeafRows(rows *sql.Rows, fn func(*evidence.StoredLeaf) error) error {
	defer rows.Close()
	var (
		l         evidence.StoredLeaf
		idx       int64
		leaf, hsh sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&idx, &l.Kind, &l.TimeNS, &leaf, &hsh); err != nil {
			return fmt.Errorf("scan leaf row: %w", err)
		}
		l.Index, l.Leaf, l.Hash = uint64(idx), leaf, hsh
		if leaf != nil && len(leaf) == 0 {
			l.Leaf = []byte{}
		}
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
	_, err := d.db.ExecContext(ctx, `INSERT INTO evidence_checkpoints (size, created_ns, note) VALUES (?, ?, ?)`,
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
	err := d.db.QueryRowContext(ctx,
		`SELECT seq, size, created_ns, note FROM evidence_checkpoints ORDER BY seq DESC LIMIT 1`).
		Scan(&seq, &size, &created, &c.Note)
	if errors.Is(err, sql.ErrNoRows) {
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
	rows, err := d.db.QueryContext(ctx,
		`SELECT seq, size, created_ns, note FROM evidence_checkpoints WHERE seq > ? ORDER BY seq LIMIT ?`,
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
	const where = ` FROM evidence_leaves WHERE idx < ? AND time_ns < ? AND kind <> 'prune' AND leaf IS NOT NULL`
	if dryRun {
		var n int64
		if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*)`+where, clamp(below), beforeNS).Scan(&n); err != nil {
			return 0, fmt.Errorf("count prunable payloads: %w", err)
		}
		return uint64(n), nil
	}
	res, err := d.db.ExecContext(ctx,
		`UPDATE evidence_leaves SET leaf = NULL WHERE idx < ? AND time_ns < ? AND kind <> 'prune' AND leaf IS NOT NULL`,
		clamp(below), beforeNS)
	if err != nil {
		return 0, fmt.Errorf("prune payloads: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune payloads: %w", err)
	}
	return uint64(n), nil
}
