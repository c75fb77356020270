package evidence_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/sqlite"
	"github.com/vigilfim/vigil/internal/store/storetest"
)

// benchRecord is a change record of realistic size (~300 bytes of body).
func benchRecord(i int) evidence.Record {
	body := fmt.Sprintf(`{"path":"/etc/app/conf.d/%08d.conf","op":"modify","old":{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","size":1024,"mode":"0644"},"new":{"sha256":"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752","size":1031,"mode":"0644"},"who":{"uid":0,"auid":1000,"exe":"/usr/bin/vim"},"verdict":"unauthorized"}`, i)
	return evidence.Record{Kind: evidence.KindChange, Time: time.Unix(1767225600, int64(i)), Host: "web-01", Actor: "uid=0 auid=1000", Body: []byte(body)}
}

// BenchmarkAppend measures sustained appends to SQLite with a Checkpointer
// signing every second: many goroutines each appending one record at a
// time (the daemon's shape), and one goroutine appending batches.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{"concurrent-single", "batch-256", "batch-4096"} {
		b.Run(mode, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := newStore(b)
			l := newLog(b, s)
			keys := storetest.NewKeys(b, "bench.example/log")
			cpr := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{Interval: time.Second})
			var signed int
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				cpr.Run(ctx)
			}()
			recs := make([]evidence.Record, 4096)
			for i := range recs {
				recs[i] = benchRecord(i)
			}
			b.ResetTimer()
			start := time.Now()
			switch mode {
			case "concurrent-single":
				b.SetParallelism(1024) // 1024 x GOMAXPROCS appenders
				var n int64
				var mu sync.Mutex
				b.RunParallel(func(pb *testing.PB) {
					mu.Lock()
					i := int(n)
					n++
					mu.Unlock()
					for pb.Next() {
						if _, err := l.Append(ctx, recs[i%len(recs)]); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			case "batch-256", "batch-4096":
				size := 256
				if mode == "batch-4096" {
					size = 4096
				}
				for i := 0; i < b.N; i += size {
					n := min(size, b.N-i)
					if _, err := l.AppendBatch(ctx, recs[:n]); err != nil {
						b.Fatal(err)
					}
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			wg.Wait()
			if _, err := cpr.Checkpoint(context.Background()); err != nil {
				b.Fatal(err)
			}
			signed++
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
		})
	}
}

// fixture is a SQLite log of benchRecords() records, built once per test
// binary and shared by the verify and proof benchmarks.
var fixture struct {
	once sync.Once
	dir  string
	path string
	keys storetest.Keys
	size uint64
	err  error
}

// benchRecords is the fixture size: VIGIL_BENCH_RECORDS, default 1,000,000.
func benchRecords() int {
	if v, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_RECORDS")); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

func buildFixture(b *testing.B) (*sqlite.DB, storetest.Keys, uint64) {
	b.Helper()
	fixture.once.Do(func() {
		ctx := context.Background()
		fixture.dir, fixture.err = os.MkdirTemp("", "vigil-evidence-bench-")
		if fixture.err != nil {
			return
		}
		fixture.path = filepath.Join(fixture.dir, "vigil.db")
		fixture.keys = fixedKeys(b)
		s, err := sqlite.Open(ctx, fixture.path)
		if err != nil {
			fixture.err = err
			return
		}
		defer s.Close()
		l, err := evidence.OpenLog(ctx, s, evidence.LogOptions{})
		if err != nil {
			fixture.err = err
			return
		}
		defer l.Close()
		cpr := evidence.NewCheckpointer(s, fixture.keys.Signer, fixture.keys.Verifier, evidence.CheckpointerOptions{})
		n := benchRecords()
		batch := make([]evidence.Record, 0, 4000)
		start := time.Now()
		for i := 0; i < n; i++ {
			batch = append(batch, benchRecord(i))
			if len(batch) == cap(batch) || i == n-1 {
				if _, fixture.err = l.AppendBatch(ctx, batch); fixture.err != nil {
					return
				}
				batch = batch[:0]
			}
			// A checkpoint per 20,000 records: one a second at the
			// target append rate.
			if (i+1)%20000 == 0 || i == n-1 {
				if _, fixture.err = cpr.Checkpoint(ctx); fixture.err != nil {
					return
				}
			}
		}
		fixture.size = uint64(n)
		b.Logf("fixture: %d records in %v", n, time.Since(start))
	})
	if fixture.err != nil {
		b.Fatal(fixture.err)
	}
	s, err := sqlite.Open(context.Background(), fixture.path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, fixture.keys, fixture.size
}

// BenchmarkVerify measures a full verification of the fixture log
// (1,000,000 records by default).
func BenchmarkVerify(b *testing.B) {
	s, keys, size := buildFixture(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := evidence.Verify(context.Background(), s, evidence.VerifyOptions{Verifier: keys.Verifier})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Size != size || rep.Unsigned != 0 {
			b.Fatalf("report %+v", rep)
		}
	}
	b.ReportMetric(float64(size), "records")
}

// BenchmarkInclusionProof measures building and checking the inclusion
// proof of a random record of the fixture log against its checkpoint.
func BenchmarkInclusionProof(b *testing.B) {
	s, keys, size := buildFixture(b)
	ctx := context.Background()
	sc, err := s.LatestCheckpoint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	cp, err := evidence.OpenCheckpoint(sc.Note, "", keys.Verifier)
	if err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx := rnd.Uint64N(size)
		t0 := time.Now()
		p, err := evidence.InclusionProof(ctx, s, idx, cp.Size)
		if err != nil {
			b.Fatal(err)
		}
		h, err := s.Nodes(ctx, []evidence.NodeID{{Level: 0, Index: idx}})
		if err != nil {
			b.Fatal(err)
		}
		if err := evidence.VerifyInclusion(idx, cp.Size, h[0], p, cp.Root); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
