package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/postgres"
	"github.com/vigilfim/vigil/internal/store/storetest"
)

// baseURL returns the test server's URL or skips t.
func baseURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("VIGIL_TEST_POSTGRES_URL")
	if u == "" {
		t.Skip("VIGIL_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL tests")
	}
	return u
}

type testDB struct {
	db     *postgres.DB
	url    string
	schema string
	dsn    string // url with the schema as search_path
}

func (d *testDB) Store() evidence.Store { return d.db }

func (d *testDB) Blob(b []byte) string { return fmt.Sprintf(`'\x%x'::bytea`, b) }

// Exec runs SQL with psql, a separate client, as an intruder would.
func (d *testDB) Exec(t *testing.T, sql string) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("needs psql (apt-get install postgresql-client; scripts/setup-test-deps.sh does)")
	}
	cmd := exec.Command(bin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", d.url, "-f", "-")
	cmd.Stdin = strings.NewReader("SET search_path TO " + d.schema + ";\n" + sql + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql: %v\n%s\nSQL:\n%s", err, out, sql)
	}
}

// newDB creates a schema of its own for t, so parallel test packages and
// runs never share tables, and drops it when t ends.
func newDB(t *testing.T) storetest.DB {
	t.Helper()
	base := baseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Skipf("PostgreSQL at VIGIL_TEST_POSTGRES_URL is unreachable (%v); skipping", err)
	}
	defer conn.Close(context.Background())
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	schema := "vigil_test_" + hex.EncodeToString(rnd[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := postgres.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &testDB{db: db, url: base, schema: schema, dsn: u.String()}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newDB)
}

func TestMigrationsIdempotent(t *testing.T) {
	d := newDB(t).(*testDB)
	ctx := context.Background()
	u, _ := url.Parse(d.url)
	q := u.Query()
	q.Set("search_path", d.schema)
	u.RawQuery = q.Encode()
	again, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	defer again.Close()
	v, err := again.SchemaVersion(ctx)
	if err != nil || v < 1 {
		t.Fatalf("schema version %d, %v", v, err)
	}
}
