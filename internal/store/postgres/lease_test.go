package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfim/vigil/internal/store/postgres"
)

// TestLease: one holder at a time across stores (hubs); the holder's store
// runs on the lease's connection and fails, rather than reconnecting, once
// that connection is gone; the lock then passes to the next taker.
func TestLease(t *testing.T) {
	d := newDB(t).(*testDB)
	ctx := context.Background()
	other, err := postgres.Open(ctx, d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	l, ok, err := d.db.TryLease(ctx, "relay")
	if err != nil || !ok {
		t.Fatalf("first lease: %v %v", ok, err)
	}
	if _, ok, err := other.TryLease(ctx, "relay"); err != nil || ok {
		t.Fatalf("second holder: %v %v", ok, err)
	}
	if l2, ok, err := other.TryLease(ctx, "another"); err != nil || !ok {
		t.Fatalf("another name: %v %v", ok, err)
	} else {
		l2.Release(ctx)
	}
	if _, err := l.Store().LogSize(ctx); err != nil {
		t.Fatalf("lease store: %v", err)
	}

	// Kill the holder's session from outside, as a crash or a network cut
	// would end it.
	conn, err := pgx.Connect(ctx, d.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var killed bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND objid = (hashtext('vigil.lease.' || $1 || '.relay')::bigint & 4294967295)::oid`, d.schema).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the holder: %v %v", killed, err)
	}
	if _, err := l.Store().LogSize(ctx); err == nil {
		t.Fatal("the lease's store still answers after its session ended")
	}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		l3, ok, err := other.TryLease(ctx, "relay")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			l3.Release(ctx)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lease not free after its holder's session ended")
		}
		<-tick.C // the server ends the session asynchronously
	}
	l.Release(ctx)
}
