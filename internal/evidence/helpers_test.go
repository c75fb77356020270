package evidence_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/sqlite"
	"github.com/vigilfim/vigil/internal/store/storetest"
)

// newStore opens a fresh SQLite store: the evidence package is tested
// against the real default backend (the conformance suite covers both).
func newStore(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newLog(t testing.TB, s evidence.LogStore) *evidence.Log {
	t.Helper()
	l, err := evidence.OpenLog(context.Background(), s, evidence.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendRecs(t testing.TB, l *evidence.Log, from, to int) {
	t.Helper()
	recs := make([]evidence.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, storetest.Rec(i))
	}
	if _, err := l.AppendBatch(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

// fixedKeys returns a key pair derived from a fixed seed, so golden files
// that hold signatures (ed25519 signatures are deterministic) are stable.
func fixedKeys(t testing.TB) storetest.Keys {
	t.Helper()
	seed := bytes.Repeat([]byte{0x42}, ed25519.SeedSize)
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed), "vigil.example/evidence")
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
	return storetest.Keys{Signer: s, Verifier: v, VKey: vkey}
}

// fakeClock is a Clock whose ticker fires only when the test says so.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	tick chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	// Unbuffered: Tick returns only once Run has taken the tick, so the
	// previous tick's work is finished by then.
	return &fakeClock{now: now, tick: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(time.Duration) (<-chan time.Time, func()) { return c.tick, func() {} }

// Tick advances the clock by d and delivers a tick.
func (c *fakeClock) Tick(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	c.tick <- now
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.dir != "" {
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}
