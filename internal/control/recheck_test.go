package control_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/control"
	"github.com/vigilfim/vigil/internal/record"
)

// TestRecheckEmergency: carol's change under an emergency request is
// authorized provisionally; a day later, unapproved, Recheck turns it
// into emergency_unreviewed with a review item, once. A change under an
// emergency request approved in time stays authorized.
func TestRecheckEmergency(t *testing.T) {
	ctx := context.Background()
	now := t10.Add(time.Minute)
	f := newFixtureAt(t, func() time.Time { return now })
	for _, id := range []string{"INC-1", "INC-2"} {
		r, err := change.Open(change.Request{ID: id, Title: "emergency", Requester: "alice", Implementers: []string{"carol"},
			Scope: change.Scope{Paths: []string{f.root + "/etc/app/" + id}}, Emergency: true,
			Window: change.Window{Start: t10.Add(-time.Hour), End: t10.Add(time.Hour)}}, t10.Add(-2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.ctl.Store().CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var fs []control.Finding
	for _, id := range []string{"INC-1", "INC-2"} {
		ch := modified(f.root+"/etc/app/"+id, "fix")
		v, err := f.ctl.Classify(ctx, "app-1", ch, t10, sudo(1003, "carol"))
		if err != nil {
			t.Fatal(err)
		}
		if !v.Authorized || v.RecheckAt == nil {
			t.Fatalf("%s: want a provisional authorization, got %+v", id, v)
		}
		raw, _ := json.Marshal(record.New(ch, nil))
		fs = append(fs, control.Finding{Host: "app-1", Source: control.SourceWatch, Change: ch, Record: raw, At: t10, Actor: sudo(1003, "carol"), Verdict: v})
	}
	if _, err := f.ctl.Settle(ctx, fs, &acceptCalls{}); err != nil {
		t.Fatal(err)
	}
	// Before the deadline nothing is due.
	if evs, err := f.ctl.Recheck(ctx); err != nil || len(evs) != 0 {
		t.Fatalf("recheck before the deadline: %+v, %v", evs, err)
	}
	// bob approves INC-2 within the day; INC-1 stays unapproved.
	r2, _ := f.ctl.Store().Request(ctx, "INC-2")
	ok, err := f.ctl.Classifier().Approve(r2, "bob", t10.Add(5*time.Hour), "afterwards")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.Store().UpdateRequest(ctx, r2, ok); err != nil {
		t.Fatal(err)
	}
	now = t10.Add(25 * time.Hour)
	evs, err := f.ctl.Recheck(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Path != f.root+"/etc/app/INC-1" || fmt.Sprint(evs[0].Verdict.Reasons) != "[emergency_unreviewed]" || evs[0].Review == "" {
		t.Fatalf("recheck after the deadline: %+v", evs)
	}
	if evs, err := f.ctl.Recheck(ctx); err != nil || len(evs) != 0 {
		t.Fatalf("second recheck: %+v, %v", evs, err)
	}
}
