package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

// evidenceRecords returns the records of the evidence log beside db.
func evidenceRecords(t *testing.T, db string) []evidence.Record {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(filepath.Dir(db), "vigil.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	size, err := st.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []evidence.Record
	err = st.ScanLeaves(ctx, 0, size, func(sl *evidence.StoredLeaf) error {
		_, r, err := evidence.DecodeLeaf(sl.Leaf)
		out = append(out, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRuns returns the change records about path and the check-run
// records, in log order.
func checkRuns(t *testing.T, db, path string) (changes []evidence.Record, runs []checkEvidence) {
	t.Helper()
	for _, r := range evidenceRecords(t, db) {
		switch r.Kind {
		case evidence.KindChange:
			var c changeEvidence
			if err := json.Unmarshal(r.Body, &c); err != nil {
				t.Fatal(err)
			}
			if c.Change.Path == path {
				changes = append(changes, r)
			}
		case evidence.KindUserAction:
			var ce checkEvidence
			if err := json.Unmarshal(r.Body, &ce); err != nil {
				t.Fatal(err)
			}
			if ce.Action == "check" {
				runs = append(runs, ce)
			}
		}
	}
	return changes, runs
}

// TestCheckRecordsAChangeOnce: repeated checks of one unaccepted change
// append one change record and one run record per run; the change
// changing again, or coming back after an accept, is recorded again.
func TestCheckRecordsAChangeOnce(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "state", "baseline.vgl")
	f := filepath.Join(tree, "app.conf")
	writeFile(t, f, "v1", 0o644)
	writeFile(t, filepath.Join(tree, "other"), "o", 0o644)
	if code, _, errOut := run(t, "baseline", "--db", db, tree); code != 0 {
		t.Fatalf("baseline: %d %s", code, errOut)
	}
	writeFile(t, f, "v2", 0o644)
	check := func() string {
		t.Helper()
		code, out, errOut := run(t, "check", "--db", db)
		if code != ExitChanges || !strings.Contains(out, f) {
			t.Fatalf("check: exit %d, want %d and the change reported every time:\n%s%s", code, ExitChanges, out, errOut)
		}
		return errOut
	}
	check()
	check()
	changes, runs := checkRuns(t, db, f)
	if len(changes) != 1 || len(runs) != 2 {
		t.Fatalf("two checks of one change: %d change records, %d run records; want 1 and 2", len(changes), len(runs))
	}
	if runs[0].Changes != (ledgerCount{Recorded: 1}) || runs[1].Changes != (ledgerCount{AlreadyRecorded: 1}) {
		t.Errorf("run counts: %+v, %+v", runs[0].Changes, runs[1].Changes)
	}
	if runs[1].Summary.Modified != 1 {
		t.Errorf("second run's summary does not count the change: %+v", runs[1].Summary)
	}

	// The file changes again: a new change record.
	writeFile(t, f, "v3, longer", 0o644)
	check()
	check()
	if changes, runs = checkRuns(t, db, f); len(changes) != 2 || len(runs) != 4 {
		t.Fatalf("after a second modification: %d change records, %d run records; want 2 and 4", len(changes), len(runs))
	}

	// A check of another subtree keeps what is known about this one.
	if code, _, errOut := run(t, "check", "--db", db, filepath.Join(tree, "other")); code != ExitOK {
		t.Fatalf("check of other: %d %s", code, errOut)
	}
	check()
	if changes, _ = checkRuns(t, db, f); len(changes) != 2 {
		t.Fatalf("after a check of another path: %d change records, want 2", len(changes))
	}

	// Accepted, then changed back: a new change against the new baseline,
	// recorded.
	if code, _, errOut := run(t, "accept", "--db", db, f); code != 0 {
		t.Fatalf("accept: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "check", "--db", db); code != ExitOK {
		t.Fatalf("check after accept: %d %s", code, errOut)
	}
	writeFile(t, f, "v2", 0o644)
	check()
	if changes, _ = checkRuns(t, db, f); len(changes) != 3 {
		t.Fatalf("after accept and another change: %d change records, want 3", len(changes))
	}
	if code, out, errOut := run(t, "evidence", "verify", "--db", db); code != 0 {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
}

// TestCheckLedgerIsNotTrusted: the ledger names log records; one that
// names records the log does not hold (edited, or the log replaced)
// never suppresses a record.
func TestCheckLedgerIsNotTrusted(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "state", "baseline.vgl")
	f := filepath.Join(tree, "a")
	writeFile(t, f, "a", 0o644)
	if code, _, errOut := run(t, "baseline", "--db", db, tree); code != 0 {
		t.Fatalf("baseline: %d %s", code, errOut)
	}
	writeFile(t, f, "changed", 0o644)
	if code, _, errOut := run(t, "check", "--db", db); code != ExitChanges {
		t.Fatalf("check: %d %s", code, errOut)
	}
	ledger := checkLedgerFile(statePaths{db: db})
	b, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	var lf ledgerFile
	if err := json.Unmarshal(b, &lf); err != nil || len(lf.Paths) != 1 {
		t.Fatalf("ledger %s: %v", b, err)
	}
	for name, edit := range map[string]func(lf *ledgerFile){
		"digest edited": func(lf *ledgerFile) {
			for i := range lf.Paths {
				lf.Paths[i].Records[0].SHA256 = strings.Repeat("0", 64)
			}
		},
		"index moved": func(lf *ledgerFile) {
			for i := range lf.Paths {
				lf.Paths[i].Records[0].Index = 0
			}
		},
		"index past the log": func(lf *ledgerFile) {
			for i := range lf.Paths {
				lf.Paths[i].Records[0].Index = 1 << 40
			}
		},
		"index past any log": func(lf *ledgerFile) {
			for i := range lf.Paths {
				lf.Paths[i].Records[0].Index = 1<<64 - 1
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			var bad ledgerFile
			if err := json.Unmarshal(b, &bad); err != nil {
				t.Fatal(err)
			}
			edit(&bad)
			nb, _ := json.Marshal(bad)
			if err := os.WriteFile(ledger, nb, 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := checkRuns(t, db, f)
			code, _, errOut := run(t, "check", "--db", db)
			if code != ExitChanges || !strings.Contains(errOut, "not in the evidence log as named") {
				t.Fatalf("check: exit %d, stderr %q", code, errOut)
			}
			if after, _ := checkRuns(t, db, f); len(after) != len(before)+1 {
				t.Fatalf("%d change records before, %d after: the edited ledger suppressed the record", len(before), len(after))
			}
		})
	}
	// Garbage is ignored with a warning, and the change recorded.
	if err := os.WriteFile(ledger, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := checkRuns(t, db, f)
	if code, _, errOut := run(t, "check", "--db", db); code != ExitChanges || !strings.Contains(errOut, "ignore") {
		t.Fatalf("check with a garbled ledger: exit %d, stderr %q", code, errOut)
	}
	if after, _ := checkRuns(t, db, f); len(after) != len(before)+1 {
		t.Fatalf("garbled ledger: %d change records before, %d after", len(before), len(after))
	}
}

// TestCheckRecordsAReviewOnce: under change control, an unauthorized
// change found by repeated checks has one review item (control's rule)
// and, now, one change record and one review record in the log.
func TestCheckRecordsAReviewOnce(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "state", "baseline.vgl")
	f := filepath.Join(tree, "app.conf")
	writeFile(t, f, "workers = 4\n", 0o644)
	pol := filepath.Join(root, "policy.yaml")
	writeFile(t, pol, "version: 1\nname: cc-once\nrules:\n  - path: "+tree+"\npeople:\n  - {id: alice, uids: [1001], roles: [admins]}\n"+
		"roles:\n  - name: admins\n    implement:\n      - paths: [\""+tree+"/**\"]\n", 0o644)
	if code, _, errOut := run(t, "baseline", "--db", db, "--policy", pol); code != 0 {
		t.Fatalf("baseline: %d %s", code, errOut)
	}
	writeFile(t, f, "workers = 8\n", 0o644)
	for range 2 {
		if code, out, errOut := run(t, "check", "--db", db); code != ExitChanges || !strings.Contains(out, "review") {
			t.Fatalf("check: exit %d:\n%s%s", code, out, errOut)
		}
	}
	changes, runs := checkRuns(t, db, f)
	reviews := 0
	for _, r := range evidenceRecords(t, db) {
		if r.Kind == evidence.KindReview && strings.Contains(string(r.Body), `"action":"settle"`) {
			reviews++
		}
	}
	if len(changes) != 1 || reviews != 1 || len(runs) != 2 {
		t.Fatalf("two checks of one unauthorized change: %d change records, %d review records, %d runs; want 1, 1, 2", len(changes), reviews, len(runs))
	}
	if runs[1].Reviews != (ledgerCount{AlreadyRecorded: 1}) || runs[1].Changes != (ledgerCount{AlreadyRecorded: 1}) {
		t.Errorf("second run: changes %+v, reviews %+v", runs[1].Changes, runs[1].Reviews)
	}
}
