package control_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/control"
)

// TestOpenPostgres opens the controller on a postgres:// DSN (a schema of
// its own) and settles a change through it.
func TestOpenPostgres(t *testing.T) {
	base := os.Getenv("VIGIL_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("VIGIL_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	defer conn.Close(ctx)
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "vigil_test_" + hex.EncodeToString(rnd[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	_, vkey, err := note.GenerateKey(rand.Reader, "deploy-app")
	if err != nil {
		t.Fatal(err)
	}
	pol := testPolicy(t, t.TempDir(), vkey)
	ctl, err := control.Open(ctx, u.String(), pol, control.Options{Now: func() time.Time { return t10 }, Packages: noPackages{}})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ch := modified("/etc/x", "y")
	v, err := ctl.Classify(ctx, "h", ch, t10, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := ctl.Settle(ctx, []control.Finding{{Host: "h", Source: control.SourceCheck, Change: ch,
		Record: []byte(`{"path":"/etc/x","type":"modified","new":{}}`), At: t10, Verdict: v}}, nil)
	if err != nil || len(evs) != 1 || evs[0].Review == "" {
		t.Fatalf("settle: %+v, %v", evs, err)
	}
	items, err := ctl.Store().Reviews(ctx, change.ReviewOpen)
	if err != nil || len(items) != 1 {
		t.Fatalf("reviews: %+v, %v", items, err)
	}
}
