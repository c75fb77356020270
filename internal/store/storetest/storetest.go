// Package storetest is the conformance suite every Vigil store backend
// passes: the same tests, through the same evidence API, against SQLite and
// PostgreSQL. Tamper tests edit the database with its own command-line
// client (sqlite3, psql), as an intruder would, and check that verification
// names the first bad index and what is wrong.
package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/evidence"
)

// DB is one fresh test database of a backend.
type DB interface {
	// Store is the open store.
	Store() evidence.Store
	// Exec runs SQL statements with the backend's command-line client,
	// outside the store's connections. It fails the test on error.
	Exec(t *testing.T, sql string)
	// Blob renders b as a SQL literal of the backend's binary type.
	Blob(b []byte) string
}

// NewDB returns a fresh, empty, migrated database that is cleaned up when t
// ends. It skips t (with a message saying why) if the backend is not
// available here.
type NewDB func(t *testing.T) DB

// Run runs the whole suite.
func Run(t *testing.T, newDB NewDB) {
	t.Run("AppendAndProve", func(t *testing.T) { testAppendAndProve(t, newDB(t)) })
	t.Run("ConcurrentAppend", func(t *testing.T) { testConcurrentAppend(t, newDB(t)) })
	t.Run("TwoWriters", func(t *testing.T) { testTwoWriters(t, newDB(t)) })
	t.Run("Checkpoints", func(t *testing.T) { testCheckpoints(t, newDB(t)) })
	t.Run("Prune", func(t *testing.T) { testPrune(t, newDB(t)) })
	t.Run("ExportBundle", func(t *testing.T) { testExport(t, newDB(t)) })
	t.Run("Tamper", func(t *testing.T) { testTamper(t, newDB) })
	t.Run("ChangeControl", func(t *testing.T) { RunChangeControl(t, newDB) })
	t.Run("FleetUsersAndTokens", func(t *testing.T) { testFleetUsersAndTokens(t, fleetStore(t, newDB(t))) })
	t.Run("FleetIngest", func(t *testing.T) { testFleetIngest(t, fleetStore(t, newDB(t))) })
	t.Run("FleetHeartbeat", func(t *testing.T) { testFleetHeartbeat(t, fleetStore(t, newDB(t))) })
	t.Run("FleetGroupsAndRevocation", func(t *testing.T) { testFleetGroupsAndRevocation(t, fleetStore(t, newDB(t))) })
	t.Run("FleetAgentRecords", func(t *testing.T) { testFleetAgentRecords(t, fleetStore(t, newDB(t))) })
}

// Keys is a generated log key pair.
type Keys struct {
	Signer   note.Signer
	Verifier note.Verifier
	VKey     string
}

// NewKeys generates an ed25519 note key pair named name.
func NewKeys(t testing.TB, name string) Keys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return Keys{Signer: s, Verifier: v, VKey: vkey}
}

// base is the time of the first test record.
var base = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// Rec returns a deterministic test record number i.
func Rec(i int) evidence.Record {
	kinds := []string{evidence.KindChange, evidence.KindReview, evidence.KindHealth, evidence.KindUserAction}
	body := fmt.Sprintf(`{"path":"/etc/file-%d","seq":%d,"verdict":"authorized"}`, i, i)
	return evidence.Record{
		Kind:  kinds[i%len(kinds)],
		Time:  base.Add(time.Duration(i) * time.Second),
		Host:  "web-01",
		Actor: fmt.Sprintf("uid=%d", 1000+i%7),
		Body:  []byte(body),
	}
}

// appendN appends records [from, to) with batches of varying size.
func appendN(t *testing.T, l *evidence.Log, from, to int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < to; {
		n := min(1+i%5, to-i)
		batch := make([]evidence.Record, n)
		for j := range batch {
			batch[j] = Rec(i + j)
		}
		first, err := l.AppendBatch(ctx, batch)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if first != uint64(i) {
			t.Fatalf("append %d: got index %d", i, first)
		}
		i += n
	}
}

func openLog(t *testing.T, s evidence.Store) *evidence.Log {
	t.Helper()
	l, err := evidence.OpenLog(context.Background(), s, evidence.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
