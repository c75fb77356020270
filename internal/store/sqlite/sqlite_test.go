package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
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

// TestRestoredBackupIsRollback restores a real copy of the database file
// taken earlier, as an intruder (or a careless restore) would, and checks
// that the checkpoint file and witness copy expose it.
func TestRestoredBackupIsRollback(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.db")
	file := filepath.Join(dir, "evidence.checkpoint")
	wit := filepath.Join(dir, "witness")
	if err := os.Mkdir(wit, 0o755); err != nil {
		t.Fatal(err)
	}
	keys := storetest.NewKeys(t, "test.example/log")
	grow := func(from, to int) {
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		l, err := evidence.OpenLog(ctx, db, evidence.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			if _, err := l.Append(ctx, storetest.Rec(i)); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		cpr := evidence.NewCheckpointer(db, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{File: file, WitnessDirs: []string{wit}})
		if _, err := cpr.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	grow(0, 30)
	// Closing the last connection checkpoints the WAL into the main file,
	// so the file alone is a complete backup.
	backup, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	grow(30, 50)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	if err := os.WriteFile(path, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := evidence.Verify(ctx, db, evidence.VerifyOptions{Verifier: keys.Verifier}); err != nil {
		t.Fatalf("the backup is consistent in itself, yet: %v", err)
	}
	_, err = evidence.Verify(ctx, db, evidence.VerifyOptions{Verifier: keys.Verifier, CheckpointFile: file, WitnessDirs: []string{wit}})
	var ve *evidence.VerifyError
	if !errors.As(err, &ve) || ve.Reason != evidence.ReasonRollback || ve.Index != 30 {
		t.Fatalf("Verify of a restored backup = %v, want rollback at index 30", err)
	}
	t.Logf("verify: %v", err)
	// The witness refuses to go back too, so the checkpointer reports it.
	cpr := evidence.NewCheckpointer(db, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{WitnessDirs: []string{wit}})
	l, err := evidence.OpenLog(ctx, db, evidence.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(ctx, storetest.Rec(99)); err != nil {
		t.Fatal(err)
	}
	if _, err := cpr.Checkpoint(ctx); !errors.Is(err, evidence.ErrWitnessRefused) {
		t.Fatalf("checkpoint after restore: %v, want ErrWitnessRefused", err)
	}
}
