package baseline

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestKillDuringWrite SIGKILLs a process writing a new baseline at random
// moments (including just before and during Commit) and checks that the
// baseline at the path is always complete and valid: the old one, byte for
// byte, unless the new one was committed.
func TestKillDuringWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several writer processes")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "baseline")
	writeAll(t, path, testHeader(), allKinds(), tagOf)
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60000
	lines := n/1000 + 2 // progress lines, "commit", "done"
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	targets := []int{0, lines - 2} // right at the start, and at Commit
	for range 4 {
		targets = append(targets, rng.IntN(lines-1))
	}
	for _, target := range targets {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=crash-write", childEnv+"_PATH="+path, childEnv+"_N="+strconv.Itoa(n))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		last := ""
		for i := 0; sc.Scan(); i++ {
			last = sc.Text()
			if i == target {
				cmd.Process.Kill()
				break
			}
		}
		// Drain so the child never blocks on a full pipe before dying.
		for sc.Scan() {
			last = sc.Text()
		}
		cmd.Wait()
		if last == "done" {
			t.Fatalf("target %d: child finished before it was killed", target)
		}

		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(got, old) {
			if _, err := openAll(path, verifierFor(t)); err != nil {
				t.Fatalf("target %d (%s): old baseline no longer opens: %v", target, last, err)
			}
			continue
		}
		// Only a kill after the rename may leave the new baseline, and
		// then it must be whole.
		if last != "commit" {
			t.Fatalf("target %d (%s): baseline changed before Commit", target, last)
		}
		if k, err := openAll(path, verifierFor(t)); err != nil || k != n {
			t.Fatalf("target %d: new baseline after kill in Commit: %d entries, %v", target, k, err)
		}
		if err := os.WriteFile(path, old, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Killed writers leave temp files; they are never opened as the
	// baseline, and a later Commit removes those that went stale.
	temps := tempFiles(t, dir)
	t.Logf("%d temp files left by killed writers", len(temps))
	fresh := filepath.Join(dir, tempPrefix(path)+"fresh")
	if err := os.WriteFile(fresh, []byte("in progress"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-2 * staleTempAge)
	for _, tmp := range temps {
		if err := os.Chtimes(tmp, long, long); err != nil {
			t.Fatal(err)
		}
	}
	writeAll(t, path, testHeader(), allKinds()[:3], tagOf)
	left := tempFiles(t, dir)
	if len(left) != 1 || left[0] != fresh {
		t.Errorf("after Commit, temp files %v; want only the fresh one", left)
	}
}

func verifierFor(t *testing.T) note.Verifier {
	_, v := testKey(t, "vigil-host1")
	return v
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}
