package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fleet"
)

// testFleetGroupsAndRevocation: groups move, policies replace per group,
// revocation is kept once set.
func testFleetGroupsAndRevocation(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	now := time.Unix(1700000000, 0)
	enroll(t, st, "a", now)
	enroll(t, st, "b", now)

	old, err := st.SetGroup(ctx, "a", "db")
	if err != nil || old != "web" {
		t.Fatalf("set group: old %q, %v", old, err)
	}
	if a, _ := st.Agent(ctx, "a"); a.Group != "db" {
		t.Fatalf("group %q after move, want db", a.Group)
	}
	if _, err := st.SetGroup(ctx, "nope", "db"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("move unknown agent: %v", err)
	}

	if _, err := st.GroupPolicy(ctx, "db"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("policy of a group without one: %v", err)
	}
	p1 := fleet.Policy{Group: "db", Version: "v1", Source: []byte("s1"), Signed: []byte("n1"), Updated: now, UpdatedBy: "ann"}
	p2 := fleet.Policy{Group: "db", Version: "v2", Source: []byte("s2"), Signed: []byte("n2"), Updated: now.Add(time.Minute), UpdatedBy: "bob"}
	for _, p := range []fleet.Policy{p1, p2, {Group: "web", Version: "w", Source: []byte("sw"), Signed: []byte("nw"), Updated: now, UpdatedBy: "ann"}} {
		if err := st.PutPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.GroupPolicy(ctx, "db")
	if err != nil || got.Version != "v2" || string(got.Source) != "s2" || string(got.Signed) != "n2" || got.UpdatedBy != "bob" || !got.Updated.Equal(p2.Updated) {
		t.Fatalf("db policy %+v, %v; want the second upload", got, err)
	}
	if w, _ := st.GroupPolicy(ctx, "web"); w.Version != "w" {
		t.Fatalf("web policy %+v", w)
	}

	a, changed, err := st.Revoke(ctx, "b", now.Add(time.Hour))
	if err != nil || !changed || !a.Revoked.Equal(now.Add(time.Hour)) {
		t.Fatalf("revoke: %+v %v %v", a, changed, err)
	}
	a, changed, err = st.Revoke(ctx, "b", now.Add(2*time.Hour))
	if err != nil || changed || !a.Revoked.Equal(now.Add(time.Hour)) {
		t.Fatalf("second revoke must keep the first time: %+v %v %v", a, changed, err)
	}
	if _, _, err := st.Revoke(ctx, "nope", now); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("revoke unknown agent: %v", err)
	}
	if a, _ := st.Agent(ctx, "a"); !a.Revoked.IsZero() {
		t.Fatalf("agent a revoked too")
	}
	as, _ := st.Agents(ctx)
	if len(as) != 2 || as[1].Revoked.IsZero() {
		t.Fatalf("inventory does not show the revocation: %+v", as)
	}
}

// testFleetAgentRecords: the records of one agent by sequence range, as
// the hub compares them with a batch that overlaps its high-water mark.
func testFleetAgentRecords(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	now := time.Unix(1700000000, 0)
	enroll(t, st, "a", now)
	enroll(t, st, "b", now)
	if _, err := st.Ingest(ctx, now, []fleet.Batch{{AgentID: "a", Records: recs(1, 5)}, {AgentID: "b", Records: recs(1, 5)}}); err != nil {
		t.Fatal(err)
	}
	got, err := st.AgentRecords(ctx, "a", 2, 4)
	if err != nil || len(got) != 3 {
		t.Fatalf("records 2-4: %d, %v", len(got), err)
	}
	want := recs(2, 4)
	for i := range got {
		if got[i].Seq != want[i].Seq || got[i].Kind != want[i].Kind || !got[i].Time.Equal(want[i].Time) || string(got[i].Body) != string(want[i].Body) {
			t.Errorf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if none, err := st.AgentRecords(ctx, "a", 6, 9); err != nil || len(none) != 0 {
		t.Fatalf("records past the mark: %+v, %v", none, err)
	}
}
