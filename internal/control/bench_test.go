package control_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/control"
)

// BenchmarkClassify measures one Classify through the controller on
// SQLite with 1,000 requests spread over 100 days (about 10 within a day
// of the change): the store query, the manifest cache and the classifier.
func BenchmarkClassify(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	for i := range 1000 {
		start := t10.Add(time.Duration(i-500) * 2 * time.Hour)
		r, err := change.Open(change.Request{ID: fmt.Sprintf("CHG-%d", i), Title: "t", Requester: "alice",
			Implementers: []string{"carol"}, Scope: change.Scope{Paths: []string{f.root + "/etc/app/**"}},
			Window: change.Window{Start: start, End: start.Add(time.Hour)}}, start.Add(-time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		if err := f.ctl.Store().CreateRequest(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	ch := modified(f.root+"/etc/app/app.conf", "x")
	who := sudo(1003, "carol")
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.ctl.Classify(ctx, "app-1", ch, t10, who); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSettle measures recording one unauthorized change with its
// review item (one SQLite transaction, synchronous=FULL).
func BenchmarkSettle(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	v := change.Verdict{Reasons: []change.Reason{change.NoChangeRequest}, Explanation: "x"}
	i := 0
	for b.Loop() {
		i++
		ch := modified(fmt.Sprintf("%s/etc/app/f%d", f.root, i), "x")
		if _, err := f.ctl.Settle(ctx, []control.Finding{{Host: "h", Source: control.SourceWatch, Change: ch,
			Record: []byte(`{}`), At: t10, Verdict: v}}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
