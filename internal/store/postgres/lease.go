package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Lease is a session-level advisory lock, held by one connection taken out
// of the pool for as long as the lease lasts. Several hubs sharing one
// database use it to elect the one that relays ingested records into the
// evidence log.
//
// Store returns a store whose every statement runs on that connection, so
// work done under the lease is fenced by it: if the connection breaks, the
// server ends the session, aborting whatever transaction was open and only
// then releasing the lock, and the store's statements fail instead of
// moving to another connection. A hub that takes the lease over can
// therefore never see a commit of the previous holder arrive after it
// looked.
type Lease struct {
	conn *pgxpool.Conn
	db   *DB
}

// TryLease takes the lease called name in the connection's schema if no
// other session holds it; ok is false if one does.
func (d *DB) TryLease(ctx context.Context, name string) (l *Lease, ok bool, err error) {
	if d.raw == nil {
		return nil, false, fmt.Errorf("take lease %s: not on a lease's store", name)
	}
	conn, err := d.raw.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("take lease %s: %w", name, err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('vigil.lease.' || current_schema() || '.' || $1))`, name).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, fmt.Errorf("take lease %s: %w", name, err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return &Lease{conn: conn, db: &DB{pool: conn}}, true, nil
}

// Store returns the store bound to the lease's connection. It is not safe
// for concurrent use: one goroutine at a time, one statement at a time.
func (l *Lease) Store() *DB { return l.db }

// Release gives the lease up by closing its connection: ending the session
// releases the lock whatever state the connection was left in.
func (l *Lease) Release(ctx context.Context) error {
	c := l.conn.Hijack()
	if err := c.Close(ctx); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}
