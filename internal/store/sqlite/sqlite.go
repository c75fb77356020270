// Package sqlite is Vigil's embedded store: one SQLite file in WAL mode
// through modernc.org/sqlite (pure Go, no cgo). Open applies the embedded
// migrations; the methods implementing each consumer's interface live in
// one file per consumer (evidence.go, ...).
//
// Writes are meant to come from one goroutine per consumer that batches
// them (see evidence.Log): SQLite has one writer at a time, and large
// transactions amortise the fsync that makes each commit durable.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Connection settings, each with its reason:
//   - WAL lets readers (verify, export, proofs) run beside the writer.
//   - synchronous=FULL makes a commit durable when it returns, which
//     evidence.Log promises its callers.
//   - busy_timeout waits out another process's write (the CLI beside a
//     running daemon) instead of failing at once.
//   - _txlock=immediate takes the write lock at BEGIN, so two writers
//     queue instead of deadlocking on a read-to-write upgrade.
//   - wal_autocheckpoint=10000 pages (~40 MiB) checkpoints the WAL less
//     often than the default 1000, which the kernel notes measured as a
//     large share of insert time under batched writes.
const dsnParams = "_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate&_pragma=page_size(16384)&_pragma=wal_autocheckpoint(2500)"

// maxConns bounds the pool: one writer plus readers. Each connection holds
// its own page cache, so more costs memory without helping a 2-core host.
const maxConns = 4

// DB is an open SQLite store.
type DB struct {
	db   *sql.DB
	path string

	stmts sync.Map // query text -> *sql.Stmt, see stmt

	// wmu serialises this process's write transactions. SQLite allows one
	// writer; without it, two goroutines' writers (the evidence log and
	// the hub's ingestion) meet in SQLite's busy handler, which sleeps up
	// to 100 ms between retries: measured with bench/fleet as seconds of
	// p99 latency. Other processes are still waited for by busy_timeout.
	wmu sync.Mutex
}

// writing takes the in-process write lock; defer the result.
func (d *DB) writing() func() {
	d.wmu.Lock()
	return d.wmu.Unlock
}

// Open opens (creating if needed) the SQLite database at path and brings
// its schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite store: invalid path %q", path)
	}
	// The store holds who changed what: create it readable by its owner
	// only. SQLite gives the WAL and shared-memory files the database
	// file's permissions.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", path+"?"+dsnParams)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	d := &DB{db: db, path: path}
	if err := d.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return d, nil
}

// Close closes the database.
func (d *DB) Close() error {
	d.stmts.Range(func(_, s any) bool {
		s.(*sql.Stmt).Close()
		return true
	})
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("close sqlite store %s: %w", d.path, err)
	}
	return nil
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// SchemaVersion returns the highest migration applied.
func (d *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migration is one embedded NNNN_name.sql file.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	ents, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range ents {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	// Versions need only be unique: feature branches take numbers far
	// apart (0002 change control, 0010 fleet) so that they merge without
	// renumbering, and apply checks each version on its own.
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s: duplicate version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrate applies the migrations not yet recorded, each in its own
// immediate transaction so two processes opening one file at once apply
// each migration exactly once.
func (d *DB) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_ns INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	for _, m := range ms {
		if err := d.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) apply(ctx context.Context, m migration) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply migration %d: %w", m.version, err)
	}
	defer tx.Rollback()
	var done int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_version WHERE version = ?`, m.version).Scan(&done); err != nil {
		return fmt.Errorf("apply migration %d: %w", m.version, err)
	}
	if done > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("apply migration %d (%s): %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_ns) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("record migration %d: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migration %d: %w", m.version, err)
	}
	return nil
}
