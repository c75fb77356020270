package sqlite_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/sqlite"
	"github.com/vigilfim/vigil/internal/store/storetest"
)

type testDB struct {
	db   *sqlite.DB
	path string
}

func (d *testDB) Store() evidence.Store { return d.db }

func (d *testDB) Blob(b []byte) string { return fmt.Sprintf("X'%x'", b) }

// Exec runs SQL with the sqlite3 command-line shell, a separate process,
// as someone editing the file by hand would.
func (d *testDB) Exec(t *testing.T, sql string) {
	t.Helper()
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("needs the sqlite3 command-line shell (apt-get install sqlite3; scripts/setup-test-deps.sh does)")
	}
	cmd := exec.Command(bin, "-bail", d.path)
	cmd.Stdin = strings.NewReader(".timeout 10000\n" + sql + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s\nSQL:\n%s", err, out, sql)
	}
}

func newDB(t *testing.T) storetest.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &testDB{db: db, path: path}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newDB)
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	for i := 0; i < 2; i++ {
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		v, err := db.SchemaVersion(ctx)
		if err != nil || v < 1 {
			t.Fatalf("schema version %d, %v", v, err)
		}
		db.Close()
	}
}

func TestOpenRejectsQueryInPath(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), "/tmp/x.db?mode=ro"); err == nil {
		t.Fatal("a path with '?' must be refused: the driver would drop the query")
	}
}
