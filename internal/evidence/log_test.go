package evidence_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/storetest"
)

func TestLogRejectsBadRecordAlone(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	l := newLog(t, s)
	bad := storetest.Rec(1)
	bad.Kind = "Bad Kind"
	if _, err := l.AppendBatch(ctx, []evidence.Record{storetest.Rec(0), bad}); !errors.Is(err, evidence.ErrInvalidRecord) {
		t.Fatalf("batch with a bad record: %v, want ErrInvalidRecord", err)
	}
	if _, err := l.AppendBatch(ctx, nil); !errors.Is(err, evidence.ErrInvalidRecord) {
		t.Fatalf("empty batch: %v, want ErrInvalidRecord", err)
	}
	// Nothing of the failed batch was written; the next append is index 0.
	if idx, err := l.Append(ctx, storetest.Rec(0)); err != nil || idx != 0 {
		t.Fatalf("Append = %d, %v; want 0", idx, err)
	}
}

func TestLogCompactsBody(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	l := newLog(t, s)
	r := evidence.Record{Kind: "review", Time: time.Unix(10, 0), Actor: "bob", Body: []byte("{\n  \"decision\": \"accept\"\n}")}
	if _, err := l.Append(ctx, r); err != nil {
		t.Fatal(err)
	}
	err := s.ScanLeaves(ctx, 0, 1, func(sl *evidence.StoredLeaf) error {
		_, got, err := evidence.DecodeLeaf(sl.Leaf)
		if err != nil {
			return err
		}
		if string(got.Body) != `{"decision":"accept"}` {
			t.Errorf("stored body %s", got.Body)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLogClosed(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	l, err := evidence.OpenLog(ctx, s, evidence.LogOptions{MaxBatch: 2, QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	appendRecs(t, l, 0, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(ctx, storetest.Rec(5)); !errors.Is(err, evidence.ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	// A new Log on the same store continues where the old one stopped.
	l2 := newLog(t, s)
	if idx, err := l2.Append(ctx, storetest.Rec(5)); err != nil || idx != 5 {
		t.Fatalf("Append on reopened log = %d, %v; want 5", idx, err)
	}
}

func TestLogAppendHonoursContext(t *testing.T) {
	s := newStore(t)
	l := newLog(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, storetest.Rec(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: %v", err)
	}
}

func TestVerifyEmptyAndWrongKey(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	keys := storetest.NewKeys(t, "test.example/log")
	rep, err := evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: keys.Verifier})
	if err != nil || rep.Size != 0 || rep.Latest != nil {
		t.Fatalf("empty log: %+v, %v", rep, err)
	}
	if _, err := evidence.Verify(ctx, s, evidence.VerifyOptions{}); err == nil || errors.Is(err, evidence.ErrTampered) {
		t.Fatalf("Verify without a key = %v, want a usage error", err)
	}
	l := newLog(t, s)
	appendRecs(t, l, 0, 10)
	if _, err := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{}).Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	appendRecs(t, l, 10, 13)
	rep, err = evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: keys.Verifier})
	if err != nil || rep.Size != 13 || rep.Unsigned != 3 || rep.Latest.Size != 10 {
		t.Fatalf("report %+v, %v; want 13 records, 3 unsigned", rep, err)
	}
	other := storetest.NewKeys(t, "test.example/log")
	_, err = evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: other.Verifier})
	var ve *evidence.VerifyError
	if !errors.As(err, &ve) || ve.Reason != evidence.ReasonBadCheckpoint || ve.Checkpoint != 1 {
		t.Fatalf("Verify with another key = %v, want bad checkpoint #1", err)
	}
}

func TestVerifyFork(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	keys := storetest.NewKeys(t, "test.example/log")
	l := newLog(t, s)
	appendRecs(t, l, 0, 8)
	if _, err := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{}).Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// A validly signed checkpoint of the same size with another root, as
	// a second log under the same key would produce.
	forked, err := evidence.SignCheckpoint(keys.Signer, "test.example/log", 8, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	file := t.TempDir() + "/cp"
	if err := os.WriteFile(file, forked, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: keys.Verifier, CheckpointFile: file})
	var ve *evidence.VerifyError
	if !errors.As(err, &ve) || ve.Reason != evidence.ReasonFork {
		t.Fatalf("Verify = %v, want fork", err)
	}
	t.Logf("verify: %v", err)
}

// TestVerifyLiveLog verifies while records are appended and checkpoints
// signed and copied out: a log in use must never look tampered.
func TestVerifyLiveLog(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	keys := storetest.NewKeys(t, "test.example/log")
	file := t.TempDir() + "/cp"
	l := newLog(t, s)
	cpr := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{File: file})
	appendRecs(t, l, 0, 10)
	if _, err := cpr.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 10; i < 400; i += 10 {
			recs := make([]evidence.Record, 10)
			for j := range recs {
				recs[j] = storetest.Rec(i + j)
			}
			if _, err := l.AppendBatch(ctx, recs); err != nil {
				done <- err
				return
			}
			if _, err := cpr.Checkpoint(ctx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; ; i++ {
		if _, err := evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: keys.Verifier, CheckpointFile: file}); err != nil {
			t.Fatalf("verify %d of a live log: %v", i, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
	}
}
