package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilfim/vigil/internal/evidence"
)

// tamperLog is the log each tamper case starts from: 64 records with
// checkpoints at 16, 32, 48 and 64, the latest also in a file and a
// witness directory.
type tamperLog struct {
	db      DB
	keys    Keys
	file    string
	witness string
}

const tamperSize = 64

func newTamperLog(t *testing.T, newDB NewDB) *tamperLog {
	t.Helper()
	ctx := context.Background()
	db := newDB(t)
	s := db.Store()
	keys := NewKeys(t, "test.example/log")
	dir := t.TempDir()
	tl := &tamperLog{db: db, keys: keys, file: filepath.Join(dir, "latest.checkpoint"), witness: filepath.Join(dir, "witness")}
	if err := os.Mkdir(tl.witness, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := evidence.OpenLog(ctx, s, evidence.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cpr := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier,
		evidence.CheckpointerOptions{File: tl.file, WitnessDirs: []string{tl.witness}})
	for i := 0; i < tamperSize; i += 16 {
		appendN(t, l, i, i+16)
		if _, err := cpr.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return tl
}

func (tl *tamperLog) verify(external bool) (evidence.VerifyReport, error) {
	opts := evidence.VerifyOptions{Verifier: tl.keys.Verifier}
	if external {
		opts.CheckpointFile = tl.file
		opts.WitnessDirs = []string{tl.witness}
	}
	return evidence.Verify(context.Background(), tl.db.Store(), opts)
}

// leafRow returns the stored leaf and hash at index i.
func (tl *tamperLog) leafRow(t *testing.T, i uint64) (leaf, hash []byte) {
	t.Helper()
	err := tl.db.Store().ScanLeaves(context.Background(), i, i+1, func(sl *evidence.StoredLeaf) error {
		leaf = append([]byte(nil), sl.Leaf...)
		hash = append([]byte(nil), sl.Hash...)
		return nil
	})
	if err != nil || leaf == nil {
		t.Fatalf("read leaf %d: %v", i, err)
	}
	return leaf, hash
}

func flip(b []byte, bit int) []byte {
	c := append([]byte(nil), b...)
	c[bit/8] ^= 1 << (bit % 8)
	return c
}

// forge returns a well-formed leaf for index i with other content, and its
// hash: what an intruder who knows the format writes.
func forge(t *testing.T, i uint64) (leaf, hash []byte) {
	t.Helper()
	r := Rec(int(i))
	r.Actor = "uid=0"
	r.Body = []byte(`{"path":"/etc/shadow","verdict":"authorized"}`)
	leaf, err := evidence.EncodeLeaf(i, r)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, evidence.LeafHash(leaf)
}

type tamperCase struct {
	name     string
	edit     func(t *testing.T, tl *tamperLog) string // returns the SQL to run
	after    func(t *testing.T, tl *tamperLog)        // file-system edits
	external bool                                     // verify with the checkpoint file and witness
	reason   evidence.Reason
	index    int64  // expected first bad index (-1: none)
	seq      uint64 // expected checkpoint Seq (0: any)
}

func tamperCases() []tamperCase {
	// shift moves rows with idx >= from by delta in two steps, so no
	// statement ever collides on the primary key (PostgreSQL checks each
	// row as it updates it).
	shift := func(from, delta int) string {
		return fmt.Sprintf("UPDATE evidence_leaves SET idx = idx + 1000000 WHERE idx >= %d;\n"+
			"UPDATE evidence_leaves SET idx = idx - 1000000 + (%d) WHERE idx >= 1000000;", from, delta)
	}
	return []tamperCase{
		{name: "leaf bit flipped", reason: evidence.ReasonAltered, index: 20,
			edit: func(t *testing.T, tl *tamperLog) string {
				leaf, _ := tl.leafRow(t, 20)
				return fmt.Sprintf("UPDATE evidence_leaves SET leaf = %s WHERE idx = 20;", tl.db.Blob(flip(leaf, len(leaf)*8-20)))
			}},
		{name: "leaf hash bit flipped", reason: evidence.ReasonAltered, index: 20,
			edit: func(t *testing.T, tl *tamperLog) string {
				_, h := tl.leafRow(t, 20)
				return fmt.Sprintf("UPDATE evidence_leaves SET hash = %s WHERE idx = 20;", tl.db.Blob(flip(h, 3)))
			}},
		{name: "record rewritten with matching hash", reason: evidence.ReasonRewritten, index: 20, seq: 2,
			edit: func(t *testing.T, tl *tamperLog) string {
				leaf, h := forge(t, 20)
				return fmt.Sprintf("UPDATE evidence_leaves SET leaf = %s, hash = %s WHERE idx = 20;", tl.db.Blob(leaf), tl.db.Blob(h))
			}},
		{name: "kind column edited", reason: evidence.ReasonAltered, index: 21,
			edit: func(t *testing.T, tl *tamperLog) string {
				return "UPDATE evidence_leaves SET kind = 'health' WHERE idx = 21 AND kind <> 'health';" +
					"UPDATE evidence_leaves SET kind = 'change' WHERE idx = 21 AND kind = 'health';"
			}},
		{name: "payload dropped without prune", reason: evidence.ReasonPayloadRemoved, index: 20,
			edit: func(t *testing.T, tl *tamperLog) string {
				return "UPDATE evidence_leaves SET leaf = NULL WHERE idx = 20;"
			}},
		{name: "record deleted", reason: evidence.ReasonMissing, index: 20,
			edit: func(t *testing.T, tl *tamperLog) string {
				return "DELETE FROM evidence_leaves WHERE idx = 20;"
			}},
		{name: "record deleted and later ones renumbered", reason: evidence.ReasonMissing, index: 20,
			edit: func(t *testing.T, tl *tamperLog) string {
				return "DELETE FROM evidence_leaves WHERE idx = 20;\n" + shift(21, -1) +
					fmt.Sprintf("\nUPDATE evidence_head SET size = %d;", tamperSize-1)
			}},
		{name: "two records swapped", reason: evidence.ReasonReordered, index: 20,
			edit: func(t *testing.T, tl *tamperLog) string {
				return "UPDATE evidence_leaves SET idx = -1 WHERE idx = 20;\n" +
					"UPDATE evidence_leaves SET idx = 20 WHERE idx = 21;\n" +
					"UPDATE evidence_leaves SET idx = 21 WHERE idx = -1;"
			}},
		{name: "record inserted", reason: evidence.ReasonInserted, index: 20,
			edit: func(t *testing.T, tl *tamperLog) string {
				leaf, h := forge(t, 20)
				return shift(20, 1) + fmt.Sprintf("\nINSERT INTO evidence_leaves (idx, kind, time_ns, leaf, hash) VALUES (20, '%s', %d, %s, %s);",
					Rec(20).Kind, Rec(20).Time.UnixNano(), tl.db.Blob(leaf), tl.db.Blob(h)) +
					fmt.Sprintf("\nUPDATE evidence_head SET size = %d;", tamperSize+1)
			}},
		{name: "tail truncated", reason: evidence.ReasonTruncated, index: 40, seq: 3,
			edit: func(t *testing.T, tl *tamperLog) string {
				return "DELETE FROM evidence_leaves WHERE idx >= 40;"
			}},
		{name: "tail after last checkpoint truncated", reason: evidence.ReasonTruncated, index: 60,
			edit: func(t *testing.T, tl *tamperLog) string {
				// Also drop the last checkpoint: only the head is left to tell.
				return "DELETE FROM evidence_leaves WHERE idx >= 60;\n" +
					"DELETE FROM evidence_checkpoints WHERE size = 64;"
			}},
		{name: "rollback to an older checkpoint", reason: evidence.ReasonRollback, index: 32, external: true,
			edit: rollbackTo(32)},
		{name: "rollback seen by the witness alone", reason: evidence.ReasonRollback, index: 32, external: true,
			edit: rollbackTo(32),
			after: func(t *testing.T, tl *tamperLog) {
				if err := os.Remove(tl.file); err != nil {
					t.Fatal(err)
				}
				tl.file = filepath.Join(filepath.Dir(tl.file), "never-written")
			}},
		{name: "checkpoint signature bit flipped", reason: evidence.ReasonBadCheckpoint, index: -1, seq: 2,
			edit: func(t *testing.T, tl *tamperLog) string {
				note := tl.checkpointNote(t, 2)
				return fmt.Sprintf("UPDATE evidence_checkpoints SET note = %s WHERE seq = 2;", tl.db.Blob(flip(note, (len(note)-10)*8)))
			}},
		{name: "checkpoint body edited", reason: evidence.ReasonBadCheckpoint, index: -1, seq: 2,
			edit: func(t *testing.T, tl *tamperLog) string {
				note := tl.checkpointNote(t, 2)
				return fmt.Sprintf("UPDATE evidence_checkpoints SET note = %s WHERE seq = 2;", tl.db.Blob(flip(note, len("test.example/log\n")*8+1)))
			}},
		{name: "checkpoint size column edited", reason: evidence.ReasonBadCheckpoint, index: -1, seq: 3,
			edit: func(t *testing.T, tl *tamperLog) string {
				return "UPDATE evidence_checkpoints SET size = 40 WHERE seq = 3;"
			}},
		{name: "checkpoints swapped", reason: evidence.ReasonCheckpointOrder, index: -1, seq: 3,
			edit: func(t *testing.T, tl *tamperLog) string {
				n2, n3 := tl.checkpointNote(t, 2), tl.checkpointNote(t, 3)
				return fmt.Sprintf("UPDATE evidence_checkpoints SET note = %s, size = 48 WHERE seq = 2;\n"+
					"UPDATE evidence_checkpoints SET note = %s, size = 32 WHERE seq = 3;", tl.db.Blob(n3), tl.db.Blob(n2))
			}},
		{name: "interior node altered", reason: evidence.ReasonInconsistent, index: -1, seq: 2,
			edit: func(t *testing.T, tl *tamperLog) string {
				return fmt.Sprintf("UPDATE evidence_nodes SET hash = %s WHERE level = 4 AND idx = 1;", tl.db.Blob(make([]byte, 32)))
			}},
		{name: "checkpoint file deleted", reason: evidence.ReasonExternalMissing, index: -1, external: true,
			after: func(t *testing.T, tl *tamperLog) {
				if err := os.Remove(tl.file); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "checkpoint file bit flipped", reason: evidence.ReasonBadCheckpoint, index: -1, external: true,
			after: func(t *testing.T, tl *tamperLog) {
				b, err := os.ReadFile(tl.file)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(tl.file, flip(b, (len(b)-5)*8), 0o644); err != nil {
					t.Fatal(err)
				}
			}},
	}
}

// rollbackTo returns SQL that puts the database back to its state at size
// n, as restoring an old backup would: consistent in itself, so only the
// checkpoint copies outside the database can tell.
func rollbackTo(n int) func(*testing.T, *tamperLog) string {
	return func(t *testing.T, tl *tamperLog) string {
		return fmt.Sprintf("DELETE FROM evidence_leaves WHERE idx >= %d;\n"+
			"DELETE FROM evidence_nodes WHERE (idx + 1) * (1 << level) > %d;\n"+
			"DELETE FROM evidence_checkpoints WHERE size > %d;\n"+
			"UPDATE evidence_head SET size = %d;", n, n, n, n)
	}
}

func (tl *tamperLog) checkpointNote(t *testing.T, seq uint64) []byte {
	t.Helper()
	var note []byte
	err := tl.db.Store().ScanCheckpoints(context.Background(), seq-1, 1, func(c evidence.StoredCheckpoint) error {
		note = append([]byte(nil), c.Note...)
		return nil
	})
	if err != nil || note == nil {
		t.Fatalf("read checkpoint %d: %v", seq, err)
	}
	return note
}

func testTamper(t *testing.T, newDB NewDB) {
	// The untouched log verifies, with and without the external copies.
	tl := newTamperLog(t, newDB)
	for _, ext := range []bool{false, true} {
		rep, err := tl.verify(ext)
		if err != nil {
			t.Fatalf("untouched log (external %v): %v", ext, err)
		}
		if rep.Size != tamperSize || rep.Checkpoints != 4 || rep.Unsigned != 0 {
			t.Fatalf("untouched log report %+v", rep)
		}
	}
	for _, tc := range tamperCases() {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTamperLog(t, newDB)
			if tc.edit != nil {
				tl.db.Exec(t, tc.edit(t, tl))
			}
			if tc.after != nil {
				tc.after(t, tl)
			}
			_, err := tl.verify(tc.external)
			var ve *evidence.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a VerifyError (%s)", err, tc.reason)
			}
			if !errors.Is(err, evidence.ErrTampered) {
				t.Errorf("VerifyError does not wrap ErrTampered")
			}
			t.Logf("verify: %v", err)
			if ve.Reason != tc.reason || ve.Index != tc.index || (tc.seq != 0 && ve.Checkpoint != tc.seq) {
				t.Fatalf("Verify = %q (reason %q, index %d, checkpoint %d)\nwant reason %q, index %d, checkpoint %d",
					err, ve.Reason, ve.Index, ve.Checkpoint, tc.reason, tc.index, tc.seq)
			}
			if tc.name == "rollback to an older checkpoint" {
				// Without the copies outside the database a rollback is
				// invisible: that is why they exist.
				if _, err := tl.verify(false); err != nil {
					t.Fatalf("rolled-back database alone: %v", err)
				}
			}
		})
	}
}
