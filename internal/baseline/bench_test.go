package baseline

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// benchN is the size of the benchmark tree: the scale the format is
// designed for.
const benchN = 1_000_000

// BenchmarkWrite writes a baseline of benchN synthetic entries per
// iteration (generation included; see BenchmarkSynth for its share).
// Run: go test -run '^$' -bench 'Write|Read|Synth' -benchtime 1x ./internal/baseline
func BenchmarkWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "baseline")
	for b.Loop() {
		if err := writeSynth(path, benchN, 7, 2, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportSize(b, path)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchN, "ns/entry")
}

// BenchmarkRead opens (verifying) and reads a baseline of benchN entries.
func BenchmarkRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "baseline")
	if err := writeSynth(path, benchN, 7, 2, nil); err != nil {
		b.Fatal(err)
	}
	_, v := testKey(b, "vigil-host1")
	b.ResetTimer()
	for b.Loop() {
		r, err := Open(path, v)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, _, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		r.Close()
		if n != benchN {
			b.Fatalf("read %d entries", n)
		}
	}
	reportSize(b, path)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchN, "ns/entry")
}

// BenchmarkSynth measures the synthetic entry generator alone.
func BenchmarkSynth(b *testing.B) {
	for b.Loop() {
		g := newSynth(benchN, 7)
		for e := g.next(); e != nil; e = g.next() {
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchN, "ns/entry")
}

func reportSize(b *testing.B, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/benchN, "bytes/entry")
}

// TestMemoryBounded writes and then reads a 1,000,000-entry baseline, each
// in a child process of its own, and checks the peak RSS of each stays
// under 100 MB.
// Run: go test -run TestMemoryBounded -v ./internal/baseline
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 1,000,000-entry baseline")
	}
	path := filepath.Join(t.TempDir(), "baseline")
	const limitKB = 100 << 10
	for _, mode := range []string{"write", "read"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+mode, childEnv+"_PATH="+path, childEnv+"_N="+strconv.Itoa(benchN))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s child: %v\n%s", mode, err, out)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		t.Logf("%s %d entries: peak RSS %.1f MB, user %.2fs sys %.2fs", mode, benchN, float64(ru.Maxrss)/1024,
			float64(ru.Utime.Nano())/1e9, float64(ru.Stime.Nano())/1e9)
		if ru.Maxrss > limitKB {
			t.Errorf("%s: peak RSS %d KB, over %d KB", mode, ru.Maxrss, limitKB)
		}
	}
	if fi, err := os.Stat(path); err == nil {
		t.Logf("file %d bytes, %.1f bytes/entry", fi.Size(), float64(fi.Size())/benchN)
	}
}
