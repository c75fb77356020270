package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/store"
)

// ChangeStore is the change-control part of a backend (internal/control
// declares the same methods as its Store).
type ChangeStore interface {
	CreateRequest(ctx context.Context, r change.Request) error
	PutRequest(ctx context.Context, r change.Request) error
	UpdateRequest(ctx context.Context, prev, next change.Request) error
	Request(ctx context.Context, id string) (change.Request, error)
	Requests(ctx context.Context, from, to time.Time) ([]change.Request, error)
	PutManifest(ctx context.Context, m store.Manifest) error
	Manifests(ctx context.Context, at time.Time) ([]store.Manifest, error)
	RecordEvent(ctx context.Context, e store.ChangeEvent, review *change.ReviewItem) (store.ChangeEvent, *change.ReviewItem, error)
	Events(ctx context.Context, from, to time.Time, fn func(store.ChangeEvent) error) error
	Event(ctx context.Context, id int64) (store.ChangeEvent, error)
	Review(ctx context.Context, id string) (change.ReviewItem, error)
	UpdateReview(ctx context.Context, prev, next change.ReviewItem) error
	Reviews(ctx context.Context, state change.ReviewState) ([]change.ReviewItem, error)
	OpenReviews(ctx context.Context, host, path string) ([]change.ReviewItem, error)
}

// RunChangeControl runs the change-control cases.
func RunChangeControl(t *testing.T, newDB NewDB) {
	cs := func(t *testing.T) ChangeStore {
		s, ok := newDB(t).Store().(ChangeStore)
		if !ok {
			t.Fatal("backend does not implement the change-control methods")
		}
		return s
	}
	t.Run("Requests", func(t *testing.T) { testRequests(t, cs(t)) })
	t.Run("RequestCAS", func(t *testing.T) { testRequestCAS(t, cs(t)) })
	t.Run("Manifests", func(t *testing.T) { testManifests(t, cs(t)) })
	t.Run("EventsAndReviews", func(t *testing.T) { testEventsAndReviews(t, cs(t)) })
}

var t9 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func req(id string, start, end time.Time) change.Request {
	r, err := change.Open(change.Request{
		ID: id, Title: "raise workers", Requester: "alice", Implementers: []string{"carol"},
		Scope:  change.Scope{Paths: []string{"/etc/app/**"}},
		Window: change.Window{Start: start, End: end},
	}, start.Add(-time.Hour))
	if err != nil {
		panic(err)
	}
	return r
}

func ids(rs []change.Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testRequests(t *testing.T, s ChangeStore) {
	ctx := context.Background()
	a := req("CHG-1", t9, t9.Add(3*time.Hour))
	b := req("CHG-2", t9.Add(24*time.Hour), t9.Add(27*time.Hour))
	for _, r := range []change.Request{a, b} {
		if err := s.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRequest(ctx, a); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: got %v, want ErrExists", err)
	}
	got, err := s.Request(ctx, "CHG-1")
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, a)
	}
	if _, err := s.Request(ctx, "CHG-9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing request: got %v", err)
	}
	for _, tc := range []struct {
		from, to time.Time
		want     []string
	}{
		{time.Time{}, time.Time{}, []string{"CHG-1", "CHG-2"}},
		{t9.Add(-time.Hour), t9, nil}, // ends where the window starts
		{t9.Add(3 * time.Hour), t9.Add(24 * time.Hour), nil},
		{t9.Add(2 * time.Hour), t9.Add(25 * time.Hour), []string{"CHG-1", "CHG-2"}},
		{t9.Add(26 * time.Hour), time.Time{}, []string{"CHG-2"}},
	} {
		rs, err := s.Requests(ctx, tc.from, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids(rs), tc.want) {
			t.Errorf("Requests(%v, %v) = %v, want %v", tc.from, tc.to, ids(rs), tc.want)
		}
	}
	// Put replaces, as an import does.
	a2 := a
	a2.Title = "renamed"
	if err := s.PutRequest(ctx, a2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Request(ctx, "CHG-1"); got.Title != "renamed" {
		t.Fatalf("put did not replace: %q", got.Title)
	}
}

// testRequestCAS has two approvers race: exactly one update wins, the
// other gets ErrConflict and, read again, both approvals are kept.
func testRequestCAS(t *testing.T, s ChangeStore) {
	ctx := context.Background()
	r := req("CHG-7", t9, t9.Add(time.Hour))
	if err := s.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, who := range []string{"bob", "dave"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next, err := r.Approve(who, t9.Add(-30*time.Minute), "")
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = s.UpdateRequest(ctx, r, next)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("update: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d updates won, want 1 (%v)", wins, errs)
	}
	m := req("CHG-8", t9, t9.Add(time.Hour))
	if err := s.UpdateRequest(ctx, m, m); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing request: %v", err)
	}
}

func testManifests(t *testing.T, s ChangeStore) {
	ctx := context.Background()
	exp := t9.Add(2 * time.Hour)
	ms := []store.Manifest{
		{Pipeline: "deploy-app", Run: "1", Created: t9, Signed: []byte("one")},
		{Pipeline: "deploy-app", Run: "2", Created: t9.Add(time.Hour), Expires: &exp, Signed: []byte("two")},
	}
	for _, m := range ms {
		if err := s.PutManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutManifest(ctx, ms[0]); err != nil {
		t.Fatalf("same bytes again: %v", err)
	}
	other := ms[0]
	other.Signed = []byte("other")
	if err := s.PutManifest(ctx, other); !errors.Is(err, store.ErrExists) {
		t.Fatalf("other bytes for the same run: %v", err)
	}
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{
		{t9.Add(-time.Second), nil},
		{t9, []string{"one"}},
		{t9.Add(90 * time.Minute), []string{"one", "two"}},
		{exp, []string{"one"}},
	} {
		got, err := s.Manifests(ctx, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range got {
			names = append(names, string(m.Signed))
			if m.Run == "2" && (m.Expires == nil || !m.Expires.Equal(exp) || !m.Created.Equal(t9.Add(time.Hour))) {
				t.Errorf("manifest 2 read back as %+v", m)
			}
		}
		if !reflect.DeepEqual(names, tc.want) {
			t.Errorf("Manifests(%v) = %v, want %v", tc.at, names, tc.want)
		}
	}
}

func testEventsAndReviews(t *testing.T, s ChangeStore) {
	ctx := context.Background()
	auid := uint32(1003)
	ok := store.ChangeEvent{Host: "app-1", Path: "/etc/app/app.conf", At: t9.Add(time.Hour), Source: "watch",
		Change: json.RawMessage(`{"path":"/etc/app/app.conf","kind":"modified"}`),
		Actor:  &change.Actor{UID: 0, AUID: &auid, Exe: "/usr/bin/vim"},
		Verdict: change.Verdict{Authorized: true, By: &change.Authority{Kind: change.ByChangeRequest, ID: "CHG-1"},
			Explanation: "ok", Person: "carol", Request: "CHG-1"},
		Baseline: "accepted automatically"}
	e1, it, err := s.RecordEvent(ctx, ok, nil)
	if err != nil || it != nil || e1.ID == 0 || e1.Review != "" {
		t.Fatalf("record authorized: %+v %v %v", e1, it, err)
	}
	bad := ok
	bad.At = t9.Add(4 * time.Hour)
	bad.Verdict = change.Verdict{Reasons: []change.Reason{change.OutsideWindow}, Explanation: "late", Person: "carol", Request: "CHG-1"}
	bad.Baseline = ""
	item := change.NewReviewItem("", "", bad.Host, bad.Path, bad.Verdict, "root", bad.At)
	e2, it, err := s.RecordEvent(ctx, bad, &item)
	if err != nil || it == nil {
		t.Fatalf("record unauthorized: %v", err)
	}
	if e2.ID <= e1.ID || it.ID != "R-"+it.ChangeID || e2.Review != it.ID {
		t.Fatalf("ids: event %d review %+v", e2.ID, it)
	}
	var seen []store.ChangeEvent
	if err := s.Events(ctx, time.Time{}, time.Time{}, func(e store.ChangeEvent) error { seen = append(seen, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || !reflect.DeepEqual(seen[0].Verdict, e1.Verdict) || seen[1].Review != it.ID ||
		*seen[0].Actor.AUID != 1003 || string(seen[0].Change) != string(ok.Change) || !seen[1].At.Equal(bad.At) {
		t.Fatalf("events read back: %+v", seen)
	}
	seen = nil
	if err := s.Events(ctx, t9.Add(2*time.Hour), t9.Add(5*time.Hour), func(e store.ChangeEvent) error { seen = append(seen, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].ID != e2.ID {
		t.Fatalf("events in range: %+v", seen)
	}
	if got, err := s.Event(ctx, e2.ID); err != nil || got.Review != it.ID || got.Verdict.Explanation != "late" {
		t.Fatalf("event %d read back: %+v, %v", e2.ID, got, err)
	}
	if _, err := s.Event(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing event: %v", err)
	}
	open, err := s.Reviews(ctx, change.ReviewOpen)
	if err != nil || len(open) != 1 || !reflect.DeepEqual(open[0], *it) {
		t.Fatalf("open reviews: %+v %v", open, err)
	}
	if got, err := s.OpenReviews(ctx, "app-1", "/etc/app/app.conf"); err != nil || len(got) != 1 || got[0].ID != it.ID {
		t.Fatalf("open reviews of the path: %+v, %v", got, err)
	}
	if got, err := s.OpenReviews(ctx, "app-2", "/etc/app/app.conf"); err != nil || len(got) != 0 {
		t.Fatalf("open reviews on another host: %+v, %v", got, err)
	}
	done, err := it.Accept("bob", "agreed afterwards", t9.Add(5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateReview(ctx, *it, done); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateReview(ctx, *it, done); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale review update: %v", err)
	}
	if open, _ := s.Reviews(ctx, change.ReviewOpen); len(open) != 0 {
		t.Fatalf("still open: %+v", open)
	}
	if got, _ := s.OpenReviews(ctx, "app-1", "/etc/app/app.conf"); len(got) != 0 {
		t.Fatalf("decided item still listed as open for its path: %+v", got)
	}
	all, _ := s.Reviews(ctx, "")
	got, err := s.Review(ctx, it.ID)
	if err != nil || len(all) != 1 || got.State != change.ReviewAccepted || got.Reviewer != "bob" {
		t.Fatalf("review read back: %+v %v", got, err)
	}
	if _, err := s.Review(ctx, "R-999"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing review: %v", err)
	}
}
