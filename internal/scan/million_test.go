//go:build linux

package scan

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fim"
)

// gobOld streams a baseline written by gobWriter.
type gobOld struct{ dec *gob.Decoder }

func (g gobOld) Next() (*fim.Entry, uint32, error) {
	var e fim.Entry
	if err := g.dec.Decode(&e); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, io.EOF
		}
		return nil, 0, err
	}
	return &e, 0, nil
}

// BenchmarkScanMillion measures whole-process peak RSS and time for a
// baseline and an unchanged check of 1,000,000 files on a tmpfs, with the
// baseline streamed to and from a file as a real caller would. Needs root
// (mount) and VIGIL_SCAN_BENCH_MILLION=1; creating the files takes minutes.
//
//	VIGIL_SCAN_BENCH_MILLION=1 go test -run '^$' -bench ScanMillion -benchtime 1x ./internal/scan
func BenchmarkScanMillion(b *testing.B) {
	if os.Getenv("VIGIL_SCAN_BENCH_MILLION") == "" {
		b.Skip("set VIGIL_SCAN_BENCH_MILLION=1 to run")
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root: mounts a tmpfs")
	}
	dir := b.TempDir()
	root := filepath.Join(dir, "tree")
	mkdir(b, root)
	if err := mount("tmpfs", root, "tmpfs", 0, "size=4g,nr_inodes=2000000"); err != nil {
		b.Skipf("mount tmpfs: %v", err)
	}
	b.Cleanup(func() { unmount(root) })
	content := []byte("some file content of about a hundred bytes, the same for every file in the tree\n")
	for d := range 1000 {
		sub := filepath.Join(root, fmt.Sprintf("d%03d", d))
		mkdir(b, sub)
		for f := range 1000 {
			if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(f)), content, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	p := pol(rule(root))
	basePath := filepath.Join(dir, "base.gob")
	for b.Loop() {
		f, err := os.Create(basePath)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(f)
		enc := gob.NewEncoder(w)
		start := time.Now()
		st, err := Run(context.Background(), p, nil, Options{}, func(it *Item) error { return enc.Encode(it.New) })
		if err != nil {
			b.Fatal(err)
		}
		w.Flush()
		f.Close()
		b.Logf("baseline: %v, %d entries, peak RSS %d MB", time.Since(start).Round(time.Millisecond), st.Scanned, rusage().Maxrss/1024)

		f, err = os.Open(basePath)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		st, err = Run(context.Background(), p, gobOld{gob.NewDecoder(bufio.NewReader(f))}, Options{}, func(*Item) error { return nil })
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("check: %v, %d scanned, %d reused, %d missing, peak RSS %d MB", time.Since(start).Round(time.Millisecond), st.Scanned, st.Reused, st.Missing, rusage().Maxrss/1024)
	}
}
