package evidence_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/storetest"
)

func TestCheckpointerRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newStore(t)
	l := newLog(t, s)
	keys := storetest.NewKeys(t, "test.example/log")
	clock := newFakeClock(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	file := filepath.Join(t.TempDir(), "checkpoint")
	got := make(chan evidence.Checkpoint, 10)
	cpr := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{
		Interval: 5 * time.Second, Clock: clock, File: file,
		OnCheckpoint: func(cp evidence.Checkpoint, err error) {
			if err != nil {
				t.Errorf("checkpoint: %v", err)
			}
			got <- cp
		},
	})
	done := make(chan error, 1)
	go func() { done <- cpr.Run(ctx) }()

	clock.Tick(5 * time.Second) // empty log: nothing to sign
	appendRecs(t, l, 0, 10)
	clock.Tick(5 * time.Second) // grew: signs size 10
	clock.Tick(5 * time.Second) // no growth: nothing
	appendRecs(t, l, 10, 15)
	clock.Tick(5 * time.Second) // signs size 15
	clock.Tick(5 * time.Second) // makes sure the previous tick finished
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	close(got)
	var sizes []uint64
	for cp := range got {
		sizes = append(sizes, cp.Size)
	}
	if len(sizes) != 2 || sizes[0] != 10 || sizes[1] != 15 {
		t.Fatalf("checkpoints signed at sizes %v, want [10 15]", sizes)
	}
	cp, err := evidence.ReadCheckpointFile(file, "", keys.Verifier)
	if err != nil || cp.Size != 15 {
		t.Fatalf("checkpoint file: %+v, %v", cp, err)
	}
	latest, err := s.LatestCheckpoint(context.Background())
	// Signed on the fourth tick, read from the fake clock (which the fifth
	// tick may already have moved on).
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	if err != nil || latest.Created.Before(start.Add(20*time.Second)) || latest.Created.After(clock.Now()) {
		t.Fatalf("latest stored checkpoint created %v, %v: want the fake clock's time", latest.Created, err)
	}
}

func TestOpenCheckpoint(t *testing.T) {
	keys := storetest.NewKeys(t, "test.example/log")
	other := storetest.NewKeys(t, "test.example/log")
	root := bytes.Repeat([]byte{7}, 32)
	signed, err := evidence.SignCheckpoint(keys.Signer, "test.example/log", 42, root)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := evidence.OpenCheckpoint(signed, "", keys.Verifier)
	if err != nil || cp.Size != 42 || !bytes.Equal(cp.Root, root) || cp.Origin != "test.example/log" {
		t.Fatalf("OpenCheckpoint = %+v, %v", cp, err)
	}
	wrongOrigin, _ := evidence.SignCheckpoint(keys.Signer, "other.example/log", 42, root)
	extension, _ := evidence.SignCheckpoint(keys.Signer, "test.example/log\n42\nAAAA\nextra", 1, root)
	shortRoot, _ := evidence.SignCheckpoint(keys.Signer, "test.example/log", 42, root[:31])
	tests := []struct {
		name   string
		signed []byte
		v      storetest.Keys
		want   string
	}{
		{"other key", signed, other, "signature"},
		{"wrong origin", wrongOrigin, keys, "Origin"},
		{"flipped signature", flipByte(signed, len(signed)-10), keys, "signature"},
		{"flipped size", bytes.Replace(signed, []byte("\n42\n"), []byte("\n43\n"), 1), keys, "signature"},
		{"malformed body", extension, keys, ""},
		{"short root", shortRoot, keys, "root hash is 31 bytes"},
		{"oversized", append(bytes.Repeat([]byte("x"), evidence.MaxCheckpointLen), signed...), keys, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := evidence.OpenCheckpoint(tc.signed, "test.example/log", tc.v.Verifier)
			if !errors.Is(err, evidence.ErrBadCheckpoint) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenCheckpoint = %v, want ErrBadCheckpoint mentioning %q", err, tc.want)
			}
		})
	}
}

func flipByte(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

func TestWitnessRefusesRollbackAndFork(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	l := newLog(t, s)
	keys := storetest.NewKeys(t, "test.example/log")
	wit := t.TempDir()
	cpr := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{WitnessDirs: []string{wit}})
	appendRecs(t, l, 0, 10)
	cp10, err := cpr.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendRecs(t, l, 10, 20)
	cp20, err := cpr.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Going back is refused and leaves the witness copy alone.
	if err := evidence.CopyToWitness(ctx, s, cp10, wit, keys.Verifier); !errors.Is(err, evidence.ErrWitnessRefused) {
		t.Fatalf("older checkpoint: %v, want ErrWitnessRefused", err)
	}
	// So is another tree of the same size (a fork).
	forkRoot := bytes.Repeat([]byte{1}, 32)
	forked, err := evidence.SignCheckpoint(keys.Signer, cp20.Origin, 20, forkRoot)
	if err != nil {
		t.Fatal(err)
	}
	fork := evidence.Checkpoint{Origin: cp20.Origin, Size: 20, Root: forkRoot, Note: forked}
	if err := evidence.CopyToWitness(ctx, s, fork, wit, keys.Verifier); !errors.Is(err, evidence.ErrWitnessRefused) {
		t.Fatalf("forked checkpoint: %v, want ErrWitnessRefused", err)
	}
	// And a larger tree that does not extend the one held.
	bigger, _ := evidence.SignCheckpoint(keys.Signer, cp20.Origin, 30, forkRoot)
	appendRecs(t, l, 20, 30)
	if err := evidence.CopyToWitness(ctx, s, evidence.Checkpoint{Origin: cp20.Origin, Size: 30, Root: forkRoot, Note: bigger}, wit, keys.Verifier); !errors.Is(err, evidence.ErrWitnessRefused) {
		t.Fatalf("inconsistent checkpoint: %v, want ErrWitnessRefused", err)
	}
	held, err := evidence.ReadCheckpointFile(evidence.WitnessPath(wit, cp20.Origin), "", keys.Verifier)
	if err != nil || held.Size != 20 || !bytes.Equal(held.Root, cp20.Root) {
		t.Fatalf("witness holds %+v, %v; want size 20", held, err)
	}
	if _, err := cpr.Checkpoint(ctx); err != nil {
		t.Fatalf("consistent growth refused: %v", err)
	}
	if _, err := os.Stat(evidence.WitnessPath(wit, cp20.Origin)); err != nil {
		t.Fatal(err)
	}
}

func TestWitnessPath(t *testing.T) {
	if got := evidence.WitnessPath("/w", "vigil.example/host 1"); got != "/w/vigil.example_host_1.checkpoint" {
		t.Fatalf("WitnessPath = %s", got)
	}
}
