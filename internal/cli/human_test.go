package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHumanReportGroupsAndNeverColoursPipes checks the human report: one
// group per kind of change with old → new values, a summary line, no
// escape codes when stdout is not a terminal, and names that could forge
// report lines quoted.
func TestHumanReportGroupsAndNeverColoursPipes(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	db := filepath.Join(root, "baseline.vgl")
	writeFile(t, filepath.Join(tree, "keep"), "1", 0o644)
	writeFile(t, filepath.Join(tree, "gone"), "1", 0o644)
	if code, _, errOut := run(t, "baseline", "--db", db, "--no-evidence", tree); code != 0 {
		t.Fatalf("baseline: %d %s", code, errOut)
	}
	writeFile(t, filepath.Join(tree, "keep"), "22", 0o644)
	if err := os.Chmod(filepath.Join(tree, "keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, "new\nfake line"), "x", 0o644)
	removeFile(t, filepath.Join(tree, "gone"))
	code, out, _ := run(t, "check", "--db", db, "--no-evidence")
	if code != ExitChanges {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"Modified (", "Added (1)", "Removed (1)",
		"mode        0644 → 0600",
		"size        1 → 2 (+1)",
		`"` + filepath.Join(tree, "new\\nfake line") + `"`,
		"changes (",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("escape codes in a report written to a pipe:\n%q", out)
	}
	if strings.Index(out, "Modified") > strings.Index(out, "Added") {
		t.Errorf("modified changes should come first:\n%s", out)
	}
}
