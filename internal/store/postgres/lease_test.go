package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfim/vigil/internal/fleet"
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

// TestIngestWaitsForEarlierRIDs: while another hub's ingest holds the
// record-order lock (it has drawn RIDs and not committed), an ingest
// waits, so RIDs commit in order and the relay's cursor cannot pass a
// record that commits later.
func TestIngestWaitsForEarlierRIDs(t *testing.T) {
	d := newDB(t).(*testDB)
	ctx := context.Background()
	now := time.Unix(1700000000, 0)
	for _, id := range []string{"a", "b"} {
		if err := d.db.CreateEnrollToken(ctx, fleet.EnrollToken{Hash: []byte(id), Group: "g", Expires: now.Add(time.Hour), Creator: "t"}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.db.Enroll(ctx, []byte(id), now, fleet.Agent{ID: id, Host: id}); err != nil {
			t.Fatal(err)
		}
	}
	rec := []fleet.Record{{Seq: 1, Kind: fleet.KindChange, Time: now, Body: json.RawMessage(`{}`)}}

	// The other hub: lock, draw a RID, do not commit yet.
	conn, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('vigil.ingest.' || current_schema()))`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO fleet_records (agent_id, seq, kind, time_ns, body) VALUES ('a', 1, 'change', 0, '{}')`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.db.Ingest(ctx, now, []fleet.Batch{{AgentID: "b", Records: rec}})
		done <- err
	}()
	// Wait until the ingest is blocked on the lock (a state in the server,
	// with no event to wait on).
	watch, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting bool
		if err := watch.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND objid = (hashtext('vigil.ingest.' || current_schema())::bigint & 4294967295)::oid)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("ingest finished (%v) while an earlier RID was uncommitted", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("ingest never waited for the lock")
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs, err := d.db.RecordsAfter(ctx, 0, 10)
	if err != nil || len(recs) != 2 || recs[0].AgentID != "a" || recs[1].AgentID != "b" {
		t.Fatalf("records %+v, %v: want a's (committed first) before b's", recs, err)
	}
}
