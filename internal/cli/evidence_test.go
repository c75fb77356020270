package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestEvidenceRecordsVerifiesExportsAndCatchesTampering(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "state", "baseline.vgl")
	writeFile(t, filepath.Join(tree, "a"), "a", 0o644)
	if code, _, errOut := run(t, "baseline", "--db", db, tree); code != 0 {
		t.Fatalf("baseline: %d %s", code, errOut)
	}
	writeFile(t, filepath.Join(tree, "a"), "changed", 0o644)
	if code, _, errOut := run(t, "check", "--db", db); code != ExitChanges {
		t.Fatalf("check: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "accept", "--db", db, "--note", "CHG-7"); code != 0 {
		t.Fatalf("accept: %d %s", code, errOut)
	}
	code, out, errOut := run(t, "evidence", "verify", "--db", db)
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	// baseline: policy_load + acceptance; check: change + user_action;
	// accept: acceptance.
	if !strings.Contains(out, "5 records") {
		t.Errorf("want 5 records: %s", out)
	}

	bundle := filepath.Join(root, "bundle.ndjson")
	code, out, errOut = run(t, "evidence", "export", "--db", db, "--out", bundle)
	if code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	code, keyOut, _ := run(t, "key", "export", "--db", db)
	if code != 0 {
		t.Fatal("key export failed")
	}
	code, out, errOut = run(t, "evidence", "verify", "--bundle", bundle, "--trusted-key", strings.TrimSpace(keyOut))
	if code != 0 || !strings.Contains(out, "checked against the trusted key") {
		t.Fatalf("verify bundle: %d %s %s", code, out, errOut)
	}
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	// Change one base64 character inside the second record's leaf.
	lines := strings.Split(string(b), "\n")
	i := strings.Index(lines[2], `"leaf":"`) + len(`"leaf":"`) + 40
	c := byte('A')
	if lines[2][i] == 'A' {
		c = 'B'
	}
	lines[2] = lines[2][:i] + string(c) + lines[2][i+1:]
	if err := os.WriteFile(bundle, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "evidence", "verify", "--bundle", bundle); code != ExitTampered {
		t.Errorf("edited bundle: exit %d, %s", code, errOut)
	}

	// Edit a record in the real database with the sqlite3 shell.
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("needs the sqlite3 shell (scripts/setup-test-deps.sh installs it)")
	}
	store := filepath.Join(root, "state", "vigil.sqlite")
	tables, err := exec.Command("sqlite3", store, ".tables").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v %s", err, tables)
	}
	if out, err := exec.Command("sqlite3", store, "UPDATE evidence_leaves SET leaf = substr(leaf, 1, 20) || X'FF' || substr(leaf, 22) WHERE idx = 2").CombinedOutput(); err != nil {
		t.Fatalf("tamper: %v %s (tables: %s)", err, out, tables)
	}
	code, out, errOut = run(t, "evidence", "verify", "--db", db)
	if code != ExitTampered || !strings.Contains(errOut, "index 2") {
		t.Errorf("tampered store: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestEvidenceWitnessFromPolicy(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	witness := filepath.Join(root, "witness")
	if err := os.MkdirAll(witness, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, "a"), "a", 0o644)
	pol := filepath.Join(root, "policy.yaml")
	writeFile(t, pol, "version: 1\nname: w\nrules:\n  - path: "+tree+"\nevidence:\n  witness: ["+witness+"]\n", 0o644)
	db := filepath.Join(root, "state", "baseline.vgl")
	if code, _, errOut := run(t, "baseline", "--db", db, "--policy", pol); code != 0 {
		t.Fatalf("baseline: %d %s", code, errOut)
	}
	ents, err := os.ReadDir(witness)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no checkpoint copy in the policy's witness directory: %v %v", ents, err)
	}
	// The witness copy takes part in verification: replace it with garbage.
	copyPath := filepath.Join(witness, ents[0].Name())
	if err := os.WriteFile(copyPath, []byte("not a checkpoint\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "evidence", "verify", "--db", db); code == 0 {
		t.Errorf("verify passed with a damaged witness copy: %s", errOut)
	}
}
