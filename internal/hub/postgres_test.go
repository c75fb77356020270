package hub_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/hub"
	"github.com/vigilfim/vigil/internal/store/postgres"
)

// pgURL returns a DSN for a fresh schema, dropped when the test ends, or
// skips without VIGIL_TEST_POSTGRES_URL.
func pgURL(t *testing.T) string {
	base := os.Getenv("VIGIL_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("VIGIL_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL tests")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Skipf("PostgreSQL unreachable (%v); skipping", err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "vigil_hub_test_" + hex.EncodeToString(rnd[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestIngestPostgres runs ingestion, a retry and a replay against a hub
// on PostgreSQL and checks the store and the evidence log.
func TestIngestPostgres(t *testing.T) {
	dsn := pgURL(t)
	h, _, st, c := enrolled(t, hub.Options{DB: dsn})
	url := h.URL() + "/api/v1/agent/records"
	for _, tc := range []struct {
		req    hub.IngestRequest
		status int
	}{{batch(1, 100), 200}, {batch(50, 150), 200}, {batch(1, 150), 409}} {
		if status, body := doPost(t, c, url, tc.req); status != tc.status {
			t.Fatalf("status %d, want %d: %s", status, tc.status, body)
		}
	}
	h.Stop(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.RecordCount(ctx, st.AgentID); err != nil || n != 150 {
		t.Fatalf("stored %d, %v; want 150", n, err)
	}
	size, _ := db.LogSize(ctx)
	changes := 0
	db.ScanLeaves(ctx, 0, size, func(l *evidence.StoredLeaf) error {
		if l.Kind == evidence.KindChange {
			changes++
		}
		return nil
	})
	if changes != 150 {
		t.Fatalf("evidence holds %d changes, want 150", changes)
	}
}
