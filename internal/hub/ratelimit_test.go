package hub

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := newLimiter(2, 10*time.Second, func() time.Time { return now })
	l.max = 3

	// A burst of recorded refusals, then throttled and counted.
	for i := range 2 {
		if !l.fail("ip:a", "bad") {
			t.Fatalf("refusal %d not recorded", i)
		}
	}
	if wait, ok := l.allow("ip:a"); ok || wait != 10*time.Second {
		t.Fatalf("after the burst: allow %v %v, want 10s", ok, wait)
	}
	if l.fail("ip:a", "bad") {
		t.Fatal("refusal past the burst recorded on its own")
	}
	if _, ok := l.allow("ip:b"); !ok {
		t.Fatal("another source throttled")
	}
	// Half a token back: still throttled, for the rest of the period.
	now = now.Add(5 * time.Second)
	if wait, ok := l.allow("ip:a"); ok || wait != 5*time.Second {
		t.Fatalf("half refilled: allow %v %v, want 5s", ok, wait)
	}
	now = now.Add(5 * time.Second)
	if _, ok := l.allow("ip:a"); !ok {
		t.Fatal("token not earned back")
	}

	s := l.flush()
	if len(s) != 1 || s[0].Source != "ip:a" || s[0].Throttled != 2 || s[0].Refused["bad"] != 1 {
		t.Fatalf("summaries %+v", s)
	}
	if s := l.flush(); len(s) != 0 {
		t.Fatalf("summary repeated: %+v", s)
	}
	// Sources back to a full bucket are forgotten.
	now = now.Add(time.Minute)
	l.flush()
	if len(l.src) != 0 {
		t.Fatalf("%d sources kept", len(l.src))
	}

	// Past max sources, new ones share one bucket.
	for _, k := range []string{"ip:1", "ip:2", "ip:3", "ip:4"} {
		l.fail(k, "bad")
	}
	if _, ok := l.src[overflowKey]; !ok || len(l.src) != 4 {
		t.Fatalf("sources %v, want three and the overflow bucket", len(l.src))
	}
	if _, ok := l.allow("ip:6"); !ok {
		t.Fatal("overflow bucket with tokens throttled")
	}
	l.fail("ip:7", "bad")
	if _, ok := l.allow("ip:8"); ok {
		t.Fatal("spray from new addresses not throttled as one")
	}
}

// BenchmarkLimiterMemory reports the heap one tracked source costs, at the
// cap of maxSources (docs/fleet.md, "Refused requests").
func BenchmarkLimiterMemory(b *testing.B) {
	keys := make([]string, maxSources)
	for i := range keys {
		keys[i] = fmt.Sprintf("ip:10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	}
	var per float64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		l := newLimiter(DefaultRefusalBurst, DefaultRefusalEvery, time.Now)
		for _, k := range keys {
			l.fail(k, "invalid token")
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(after.HeapAlloc-before.HeapAlloc) / float64(len(l.src))
		runtime.KeepAlive(l)
	}
	b.ReportMetric(per, "bytes/source")
}
