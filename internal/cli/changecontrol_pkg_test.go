package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/change"
)

// pkgTestPackage is a tiny package every Debian system has (12 kB), whose
// reinstall rewrites a documentation file and leaves its conffiles alone.
const (
	pkgTestPackage = "netbase"
	pkgTestFile    = "/usr/share/doc/netbase/copyright"
)

// TestChangeControlPackageReinstall edits a file of an installed package,
// takes that into the baseline, and lets apt-get install --reinstall put
// the package's content back: check authorizes the change as a package
// update naming the package and version (a scan has no who-data, and
// matching package content is accepted without it).
func TestChangeControlPackageReinstall(t *testing.T) {
	needRoot(t)
	if err := exec.Command("dpkg", "-s", pkgTestPackage).Run(); err != nil {
		t.Skipf("needs the %s package installed", pkgTestPackage)
	}
	orig, err := os.ReadFile(pkgTestFile)
	if err != nil {
		t.Skipf("needs %s: %v", pkgTestFile, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "apt-get", "install", "--reinstall", "--download-only", "-y", pkgTestPackage).CombinedOutput(); err != nil {
		t.Skipf("apt-get cannot fetch %s from its mirror (offline?): %v\n%s", pkgTestPackage, err, out)
	}
	t.Cleanup(func() {
		if b, _ := os.ReadFile(pkgTestFile); string(b) != string(orig) {
			os.WriteFile(pkgTestFile, orig, 0o644)
		}
	})
	T := t.TempDir()
	tree := filepath.Join(T, "tree")
	writeFile(t, tree+"/etc/app/app.conf", "workers = 4\n", 0o644)
	vkey := strings.TrimSpace(mustOK(t, wrap(run(t, "manifest", "keygen", "deploy-app", "--out", filepath.Join(T, "deploy.key")))))
	polFile := filepath.Join(T, "policy.yaml")
	writeFile(t, polFile, ccPolicy(tree, vkey, filepath.Dir(pkgTestFile)), 0o644)

	// Someone edits the package's file; the baseline takes that state.
	if err := os.WriteFile(pkgTestFile, append(append([]byte{}, orig...), "# edited by hand\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(T, "state", "baseline.vgl")
	store := filepath.Join(T, "state", "vigil.sqlite")
	mustOK(t, wrap(run(t, "baseline", "--db", db, "--policy", polFile)))

	// The package manager puts the package's content back.
	if out, err := exec.CommandContext(ctx, "apt-get", "install", "--reinstall", "-y", pkgTestPackage).CombinedOutput(); err != nil {
		t.Fatalf("apt-get install --reinstall %s: %v\n%s", pkgTestPackage, err, out)
	}
	v := verdicts(t, db, store)
	got := v[pkgTestFile]
	if got == nil || !got.Authorized || got.By.Kind != change.ByPackage || got.By.ID != pkgTestPackage ||
		!strings.Contains(got.By.Detail, "dpkg") {
		t.Fatalf("reinstalled %s: %+v", pkgTestFile, got)
	}
	t.Logf("verdict: %s %s (%s)", got.By.Kind, got.By.ID, got.By.Detail)
	// Accepted: the next check no longer reports it.
	if v := verdicts(t, db, filepath.Join(T, "scratch.sqlite")); v[pkgTestFile] != nil {
		t.Fatalf("the package update was not accepted into the baseline: %+v", v[pkgTestFile])
	}
}

// wrap lets a (code, stdout, stderr) result be passed with t.
type result struct {
	code           int
	stdout, stderr string
}

func wrap(code int, o, e string) result { return result{code, o, e} }

func mustOK(t *testing.T, r result) string {
	t.Helper()
	return expectOK(t, r.code, r.stdout, r.stderr)
}
