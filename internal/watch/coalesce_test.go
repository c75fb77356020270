package watch

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/watch/fsevent"
	"github.com/vigilfim/vigil/internal/whodata"
)

func TestCoalescer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	raw := func(ms int, path string, op fsevent.Op, pid int) fsevent.Raw {
		return fsevent.Raw{Time: at(ms), Path: path, Op: op, PID: pid}
	}
	type step struct {
		add       *fsevent.Raw
		now       int // ms: collect due entries at this time (when add is nil)
		wantNow   []string
		wantCount []int
	}
	r := func(x fsevent.Raw) *fsevent.Raw { return &x }
	tests := []struct {
		name  string
		steps []step
	}{
		{"burst merges into one", []step{
			{add: r(raw(0, "/a", fsevent.Write, 1))},
			{add: r(raw(10, "/a", fsevent.Write, 1))},
			{add: r(raw(20, "/a", fsevent.Write, 1))},
			{now: 90},
			{now: 95, wantNow: []string{"/a"}, wantCount: []int{3}},
		}},
		{"close_write flushes at once", []step{
			{add: r(raw(0, "/a", fsevent.Write, 1))},
			{add: r(raw(1, "/a", fsevent.CloseWrite, 1)), wantNow: []string{"/a"}, wantCount: []int{2}},
			{add: r(raw(2, "/a", fsevent.Write|fsevent.CloseWrite, 1)), wantNow: []string{"/a"}, wantCount: []int{1}},
		}},
		{"continuous writer bounded by max delay", []step{
			{add: r(raw(0, "/a", fsevent.Write, 1))},
			{add: r(raw(500, "/a", fsevent.Write, 1))},
			{add: r(raw(950, "/a", fsevent.Write, 1))},
			{now: 999},
			{now: 1000, wantNow: []string{"/a"}, wantCount: []int{3}},
		}},
		{"paths independent, oldest first", []step{
			{add: r(raw(0, "/b", fsevent.Write, 1))},
			{add: r(raw(5, "/a", fsevent.Write, 1))},
			{now: 200, wantNow: []string{"/b", "/a"}, wantCount: []int{1, 1}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoalescer(DefaultWindow, DefaultMaxDelay)
			for i, s := range tt.steps {
				var got []*pending
				if s.add != nil {
					if p := c.add(*s.add, SourceFanotify); p != nil {
						got = append(got, p)
					}
				} else {
					got = c.due(at(s.now))
				}
				if len(got) != len(s.wantNow) {
					t.Fatalf("step %d: got %d entries, want %v", i, len(got), s.wantNow)
				}
				for j, p := range got {
					if p.path != s.wantNow[j] || p.count != s.wantCount[j] {
						t.Errorf("step %d: entry %d = %s×%d, want %s×%d", i, j, p.path, p.count, s.wantNow[j], s.wantCount[j])
					}
				}
			}
		})
	}
}

func TestCoalescerMultipleWriters(t *testing.T) {
	c := newCoalescer(DefaultWindow, DefaultMaxDelay)
	now := time.Now()
	c.add(fsevent.Raw{Time: now, Path: "/a", PID: 10, Op: fsevent.Write}, SourceFanotify)
	c.add(fsevent.Raw{Time: now, Path: "/a", PID: 11, Op: fsevent.Attrib, Subtree: true}, SourceFanotify)
	got := c.due(now.Add(time.Second))
	if len(got) != 1 || !got[0].multi || got[0].pid != 11 || !got[0].rescan || got[0].ops != fsevent.Write|fsevent.Attrib {
		t.Fatalf("got %+v", got[0])
	}
}

func TestEventMeta(t *testing.T) {
	at := time.Date(2026, 11, 23, 16, 0, 0, 123456789, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"rescan", Event{Time: at, Source: SourceRescan},
			`{"time":"2026-11-23T15:00:00.123456789Z","source":"rescan","who":{"attribution":"unavailable","reason":"found by a rescan after lost events"}}`},
		{"startup", Event{Time: at, Source: SourceStartup},
			`{"time":"2026-11-23T15:00:00.123456789Z","source":"startup","who":{"attribution":"unavailable","reason":"found by the start-up check: changed while not watched"}}`},
		{"attributed", Event{Time: at, Source: SourceFanotify, Who: &whodata.Who{Attribution: whodata.AttributionAudit, PID: 9}},
			`{"time":"2026-11-23T15:00:00.123456789Z","source":"fanotify","who":{"attribution":"audit","pid":9}}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.ev.Meta())
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, b, tt.want)
		}
	}
}
