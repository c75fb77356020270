package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

// BenchmarkLoadCheckLedger measures what a check pays at start to confirm
// its ledger against the log: VIGIL_BENCH_LEDGER outstanding changes
// (default 100,000), each with a change record of about 700 bytes, as one
// check run leaves them.
func BenchmarkLoadCheckLedger(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_LEDGER")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.sqlite"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	lg, err := evidence.OpenLog(ctx, st, evidence.LogOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l := &checkLedger{file: filepath.Join(dir, "b.vgl.check-records"), prior: map[string][]ledgerRecord{},
		next: map[string][]ledgerRecord{}, counts: map[string]*ledgerCount{}}
	pad := strings.Repeat("x", 600)
	batch := make([]evidence.Record, 0, 4000)
	paths := make([]string, 0, cap(batch))
	flush := func() {
		first, err := lg.AppendBatch(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range batch {
			l.remember(paths[i], ledgerRecord{SHA256: bodyDigest(r.Body), Index: first + uint64(i)})
		}
		batch, paths = batch[:0], paths[:0]
	}
	for i := range n {
		p := fmt.Sprintf("/srv/app/dir%04d/file%06d", i/100, i)
		r, err := evidence.NewRecord(evidence.KindChange, time.Unix(1700000000, 0), "h", "a",
			map[string]string{"path": p, "type": "modified", "pad": pad})
		if err != nil {
			b.Fatal(err)
		}
		batch, paths = append(batch, r), append(paths, p)
		if len(batch) == cap(batch) {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	if err := lg.Close(); err != nil {
		b.Fatal(err)
	}
	if err := l.save(nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		got, warn, err := loadCheckLedger(ctx, l.file, st)
		if err != nil || warn != nil || len(got.prior) != n {
			b.Fatalf("load: %d paths, warn %v, err %v", len(got.prior), warn, err)
		}
	}
	b.StopTimer()
	fi, err := os.Stat(l.file)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/float64(n), "ledger-bytes/change")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/change")
}
