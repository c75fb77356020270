package storetest

import (
	"bytes"
	"context"
	"errors"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/vigilfim/vigil/internal/evidence"
)

// refRoot is RFC 6962's MTH written out from the RFC's definition, as an
// independent check of the stored tree.
func refRoot(hashes [][]byte) []byte {
	h := rfc6962.DefaultHasher
	switch len(hashes) {
	case 0:
		return h.EmptyRoot()
	case 1:
		return hashes[0]
	}
	k := 1 << (bits.Len(uint(len(hashes)-1)) - 1) // largest power of two < n
	return h.HashChildren(refRoot(hashes[:k]), refRoot(hashes[k:]))
}

func refHashes(t *testing.T, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		leaf, err := evidence.EncodeLeaf(uint64(i), Rec(i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = evidence.LeafHash(leaf)
	}
	return out
}

func testAppendAndProve(t *testing.T, db DB) {
	ctx := context.Background()
	s := db.Store()
	l := openLog(t, s)
	const n = 300
	appendN(t, l, 0, n)
	size, err := s.LogSize(ctx)
	if err != nil || size != n {
		t.Fatalf("LogSize = %d, %v; want %d", size, err, n)
	}
	want := refHashes(t, n)
	for _, k := range []int{0, 1, 2, 3, 7, 8, 9, 127, 128, 129, 255, 256, 257, 299, 300} {
		got, err := evidence.RootAt(ctx, s, uint64(k))
		if err != nil {
			t.Fatalf("RootAt(%d): %v", k, err)
		}
		if !bytes.Equal(got, refRoot(want[:k])) {
			t.Fatalf("RootAt(%d) differs from the RFC 6962 reference", k)
		}
	}
	for _, size := range []uint64{1, 5, 64, 257, n} {
		root := refRoot(want[:size])
		for i := uint64(0); i < size; i++ {
			p, err := evidence.InclusionProof(ctx, s, i, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, size, err)
			}
			if err := evidence.VerifyInclusion(i, size, want[i], p, root); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, size, err)
			}
		}
		for _, s1 := range []uint64{1, 2, 3, 4, 63, size - 1} {
			if s1 == 0 || s1 > size {
				continue
			}
			p, err := evidence.ConsistencyProof(ctx, s, s1, size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", s1, size, err)
			}
			if err := evidence.VerifyConsistency(s1, size, p, refRoot(want[:s1]), root); err != nil {
				t.Fatalf("consistency %d -> %d: %v", s1, size, err)
			}
		}
	}
	// The records come back as appended.
	i := 0
	err = s.ScanLeaves(ctx, 0, n, func(sl *evidence.StoredLeaf) error {
		idx, r, err := evidence.DecodeLeaf(sl.Leaf)
		if err != nil {
			return err
		}
		w := Rec(i)
		if idx != uint64(i) || sl.Index != uint64(i) || r.Kind != w.Kind || !r.Time.Equal(w.Time) ||
			r.Actor != w.Actor || r.Host != w.Host || !bytes.Equal(r.Body, w.Body) ||
			sl.Kind != w.Kind || sl.TimeNS != w.Time.UnixNano() || !bytes.Equal(sl.Hash, want[i]) {
			t.Errorf("record %d came back as %+v", i, r)
		}
		i++
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("ScanLeaves: %d records, %v", i, err)
	}
	// A scan's callback error stops the scan and comes back.
	stop := errors.New("stop")
	if err := s.ScanLeaves(ctx, 0, n, func(*evidence.StoredLeaf) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("ScanLeaves callback error: got %v", err)
	}
	// Missing nodes are ErrNotFound.
	if _, err := s.Nodes(ctx, []evidence.NodeID{{Level: 0, Index: n}}); !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("Nodes(beyond end) = %v, want ErrNotFound", err)
	}
	if _, err := s.Nodes(ctx, []evidence.NodeID{{Level: 9, Index: 0}}); !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("Nodes(incomplete subtree) = %v, want ErrNotFound", err)
	}
	// A stale size is a conflict and commits nothing.
	err = s.AppendLeaves(ctx, 5, []evidence.StoredLeaf{{Index: 5, Kind: "change", TimeNS: 1, Leaf: []byte{1}, Hash: make([]byte, 32)}}, nil)
	if !errors.Is(err, evidence.ErrConflict) {
		t.Fatalf("AppendLeaves at a stale size = %v, want ErrConflict", err)
	}
	if size, _ := s.LogSize(ctx); size != n {
		t.Fatalf("size after conflict = %d", size)
	}
}

func testConcurrentAppend(t *testing.T, db DB) {
	ctx := context.Background()
	s := db.Store()
	l := openLog(t, s)
	const workers, per = 8, 100
	var wg sync.WaitGroup
	seen := make([]bool, workers*per)
	var mu sync.Mutex
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				idx, err := l.Append(ctx, Rec(w*per+i))
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				if idx >= uint64(len(seen)) || seen[idx] {
					mu.Unlock()
					errc <- errors.New("duplicate or out-of-range index")
					return
				}
				seen[idx] = true
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	keys := NewKeys(t, "test.example/log")
	cp := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{})
	if _, err := cp.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: keys.Verifier})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Size != workers*per || rep.Unsigned != 0 || rep.Checkpoints != 1 {
		t.Fatalf("report %+v", rep)
	}
}

// testTwoWriters runs two Logs on one store, as two hubs on one PostgreSQL
// would: each sees the other's appends as a conflict and retries.
func testTwoWriters(t *testing.T, db DB) {
	ctx := context.Background()
	s := db.Store()
	a, b := openLog(t, s), openLog(t, s)
	var got []uint64
	for i := 0; i < 40; i++ {
		l := a
		if i%3 == 1 {
			l = b
		}
		idx, err := l.Append(ctx, Rec(i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		got = append(got, idx)
	}
	for i, idx := range got {
		if idx != uint64(i) {
			t.Fatalf("append %d got index %d", i, idx)
		}
	}
	keys := NewKeys(t, "test.example/log")
	if _, err := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{}).Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: keys.Verifier}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func testCheckpoints(t *testing.T, db DB) {
	ctx := context.Background()
	s := db.Store()
	if _, err := s.LatestCheckpoint(ctx); !errors.Is(err, evidence.ErrNotFound) {
		t.Fatalf("LatestCheckpoint on an empty store = %v, want ErrNotFound", err)
	}
	keys := NewKeys(t, "test.example/log")
	dir := t.TempDir()
	file := filepath.Join(dir, "latest.checkpoint")
	wit := filepath.Join(dir, "witness")
	if err := os.Mkdir(wit, 0o755); err != nil {
		t.Fatal(err)
	}
	cpr := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{File: file, WitnessDirs: []string{wit}})
	l := openLog(t, s)
	var sizes []uint64
	for i := 0; i < 5; i++ {
		appendN(t, l, i*10, i*10+10)
		cp, err := cpr.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != uint64(i*10+10) {
			t.Fatalf("checkpoint size %d", cp.Size)
		}
		sizes = append(sizes, cp.Size)
		// On demand again without growth: no new checkpoint.
		if again, err := cpr.Checkpoint(ctx); err != nil || again.Size != cp.Size || !bytes.Equal(again.Root, cp.Root) {
			t.Fatalf("repeat checkpoint: %+v, %v", again, err)
		}
	}
	// Paging returns all, in order, once.
	var seqs, got []uint64
	after := uint64(0)
	for {
		n := 0
		err := s.ScanCheckpoints(ctx, after, 2, func(c evidence.StoredCheckpoint) error {
			n++
			after = c.Seq
			seqs = append(seqs, c.Seq)
			got = append(got, c.Size)
			if c.Created.IsZero() {
				t.Errorf("checkpoint %d has no time", c.Seq)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if len(got) != len(sizes) {
		t.Fatalf("checkpoints stored: sizes %v, want %v", got, sizes)
	}
	for i := range got {
		if got[i] != sizes[i] || (i > 0 && seqs[i] <= seqs[i-1]) {
			t.Fatalf("checkpoints stored: seqs %v sizes %v, want sizes %v", seqs, got, sizes)
		}
	}
	latest, err := s.LatestCheckpoint(ctx)
	if err != nil || latest.Seq != seqs[len(seqs)-1] || latest.Size != 50 {
		t.Fatalf("LatestCheckpoint = %+v, %v", latest, err)
	}
	for _, p := range []string{file, evidence.WitnessPath(wit, "test.example/log")} {
		cp, err := evidence.ReadCheckpointFile(p, "", keys.Verifier)
		if err != nil || cp.Size != 50 {
			t.Fatalf("%s: %+v, %v", p, cp, err)
		}
	}
	rep, err := evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: keys.Verifier, CheckpointFile: file, WitnessDirs: []string{wit}})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Checkpoints != 5 || rep.External != 2 || rep.Latest == nil || rep.Latest.Size != 50 {
		t.Fatalf("report %+v", rep)
	}
}

func testPrune(t *testing.T, db DB) {
	ctx := context.Background()
	s := db.Store()
	keys := NewKeys(t, "test.example/log")
	l := openLog(t, s)
	appendN(t, l, 0, 100)
	cpr := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{})
	before, err := cpr.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := base.Add(time.Hour)
	res, err := l.Prune(ctx, s, evidence.PruneRequest{Before: base.Add(50 * time.Second), Now: now, Host: "hub", Actor: "admin", Reason: "retention 1y"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pruned != 50 || res.Record != 100 {
		t.Fatalf("prune result %+v, want 50 pruned, record 100", res)
	}
	// The old checkpoint's proofs still hold for pruned records.
	hashes := refHashes(t, 100)
	for _, i := range []uint64{0, 49, 50, 99} {
		p, err := evidence.InclusionProof(ctx, s, i, before.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := evidence.VerifyInclusion(i, before.Size, hashes[i], p, before.Root); err != nil {
			t.Fatalf("proof of %d after prune: %v", i, err)
		}
	}
	if _, err := cpr.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: keys.Verifier})
	if err != nil {
		t.Fatalf("Verify after prune: %v", err)
	}
	if rep.Pruned != 50 || rep.Size != 101 {
		t.Fatalf("report %+v", rep)
	}
	// The prune record itself is never pruned, and a repeat prunes nothing.
	res, err = l.Prune(ctx, s, evidence.PruneRequest{Before: now.Add(time.Hour), Now: now.Add(2 * time.Hour), Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pruned != 50 {
		t.Fatalf("second prune pruned %d, want the other 50", res.Pruned)
	}
	var kept []uint64
	err = s.ScanLeaves(ctx, 0, 200, func(sl *evidence.StoredLeaf) error {
		if sl.Leaf != nil {
			kept = append(kept, sl.Index)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 || kept[0] != 100 || kept[1] != 101 {
		t.Fatalf("payloads kept at %v, want the prune records 100 and 101", kept)
	}
	if _, err := cpr.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.Verify(ctx, s, evidence.VerifyOptions{Verifier: keys.Verifier}); err != nil {
		t.Fatalf("Verify after second prune: %v", err)
	}
	var buf bytes.Buffer
	if _, err := evidence.Export(ctx, s, &buf, evidence.ExportOptions{From: 40, To: 102, PublicKey: keys.VKey}); err != nil {
		t.Fatal(err)
	}
	brep, err := evidence.VerifyBundle(&buf, evidence.BundleOptions{TrustedKey: keys.VKey}, nil)
	if err != nil || brep.Pruned != 60 {
		t.Fatalf("bundle with pruned records: %+v, %v", brep, err)
	}
}

func testExport(t *testing.T, db DB) {
	ctx := context.Background()
	s := db.Store()
	keys := NewKeys(t, "test.example/log")
	l := openLog(t, s)
	appendN(t, l, 0, 100)
	var buf bytes.Buffer
	if _, err := evidence.Export(ctx, s, &buf, evidence.ExportOptions{From: 0, To: 10, PublicKey: keys.VKey}); !errors.Is(err, evidence.ErrNotCheckpointed) {
		t.Fatalf("export without checkpoint = %v, want ErrNotCheckpointed", err)
	}
	if _, err := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{}).Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 100, 110)
	if _, err := evidence.Export(ctx, s, &buf, evidence.ExportOptions{From: 0, To: 105, PublicKey: keys.VKey}); !errors.Is(err, evidence.ErrNotCheckpointed) {
		t.Fatalf("export beyond checkpoint = %v, want ErrNotCheckpointed", err)
	}
	buf.Reset()
	sum, err := evidence.Export(ctx, s, &buf, evidence.ExportOptions{From: 10, To: 60, PublicKey: keys.VKey})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checkpoint.Size != 100 {
		t.Fatalf("summary %+v", sum)
	}
	next := uint64(10)
	rep, err := evidence.VerifyBundle(&buf, evidence.BundleOptions{TrustedKey: keys.VKey}, func(br evidence.BundleRecord) error {
		w := Rec(int(next))
		if br.Index != next || br.Pruned || br.Record.Kind != w.Kind || !bytes.Equal(br.Record.Body, w.Body) {
			t.Errorf("bundle record %d: %+v", next, br)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatalf("VerifyBundle: %v", err)
	}
	if rep.From != 10 || rep.To != 60 || next != 60 || rep.Checkpoint.Size != 100 {
		t.Fatalf("bundle report %+v, read to %d", rep, next)
	}
}
