//go:build linux

package scan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/policy"
)

// benchTree makes 40 directories of 100 files of 1-16 KiB, plus four files
// of 4 MiB: 4,000 small files and some large ones, like /usr/share.
func benchTree(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	buf := make([]byte, 16<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for d := range 40 {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", d))
		mkdir(b, dir)
		for f := range 100 {
			size := 1<<10 + (d*100+f)*151%(15<<10)
			if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(f)), buf[:size], 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	big := make([]byte, 4<<20)
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("big%d", i)), big, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

func benchScan(b *testing.B, root string, full bool) {
	p := pol(rule(root))
	items, _ := scanAll(b, p, nil, Options{})
	base := baseline(items)
	var bytes int64
	for _, e := range base {
		if e.Type == fim.TypeFile {
			bytes += e.Size
		}
	}
	if full {
		b.SetBytes(bytes)
	}
	b.ResetTimer()
	for b.Loop() {
		st, err := Run(context.Background(), p, &sliceOld{entries: base}, Options{Full: full}, func(*Item) error { return nil })
		if err != nil || st.Failed != 0 || st.Scanned != int64(len(base)) {
			b.Fatalf("scan: %v, %+v", err, st)
		}
	}
	b.ReportMetric(float64(len(base))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkScanFull re-hashes every file (check --full).
func BenchmarkScanFull(b *testing.B) { benchScan(b, benchTree(b), true) }

// BenchmarkScanIncremental checks an unchanged tree: stat and xattrs only,
// digests reused from the baseline.
func BenchmarkScanIncremental(b *testing.B) { benchScan(b, benchTree(b), false) }

// BenchmarkScanRoot measures a real tree named by VIGIL_SCAN_BENCH_ROOT
// (e.g. /usr), one pass each of: full hashing with no baseline, and an
// incremental check against the baseline it produced.
//
//	VIGIL_SCAN_BENCH_ROOT=/usr go test -run '^$' -bench ScanRoot -benchtime 1x ./internal/scan
func BenchmarkScanRoot(b *testing.B) {
	root := os.Getenv("VIGIL_SCAN_BENCH_ROOT")
	if root == "" {
		b.Skip("set VIGIL_SCAN_BENCH_ROOT to a tree to measure")
	}
	p := pol(&policy.Rule{Name: root, Path: root, MaxDepth: -1, Check: fim.Check{Attrs: fim.AllAttrs}, Hash: fim.SHA256})
	for b.Loop() {
		start := time.Now()
		items, st := scanAll(b, p, nil, Options{})
		full := time.Since(start)
		base := baseline(items)
		items = nil
		ru0 := rusage()
		start = time.Now()
		st2, err := Run(context.Background(), p, &sliceOld{entries: base}, Options{}, func(*Item) error { return nil })
		incr := time.Since(start)
		ru1 := rusage()
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("full: %v, %d entries, %d files, %.2f GB hashed, %d failed", full.Round(time.Millisecond), st.Scanned, st.Files, float64(st.BytesHashed)/1e9, st.Failed)
		b.Logf("incremental: %v, %d entries, %d hashed, %d reused, %d failed, cpu user %v sys %v",
			incr.Round(time.Millisecond), st2.Scanned, st2.Hashed, st2.Reused, st2.Failed,
			time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()).Round(time.Millisecond),
			time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano()).Round(time.Millisecond))
		b.Logf("peak RSS %d MB (process, including the in-memory baseline)", ru1.Maxrss/1024)
	}
}

func rusage() syscall.Rusage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru
}
