package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fleet"
)

// fleetStore returns the backend's fleet.Store.
func fleetStore(t *testing.T, db DB) fleet.Store {
	t.Helper()
	fs, ok := db.Store().(fleet.Store)
	if !ok {
		t.Fatalf("%T does not implement fleet.Store", db.Store())
	}
	return fs
}

func recs(from, to uint64) []fleet.Record {
	var out []fleet.Record
	for s := from; s <= to; s++ {
		out = append(out, fleet.Record{Seq: s, Kind: fleet.KindChange, Time: time.Unix(1700000000, int64(s)).UTC(),
			Body: json.RawMessage(fmt.Sprintf(`{"path":"/etc/f%d"}`, s))})
	}
	return out
}

func enroll(t *testing.T, st fleet.Store, id string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	h := []byte("tok-" + id)
	if err := st.CreateEnrollToken(ctx, fleet.EnrollToken{Hash: h, Group: "web", Expires: now.Add(time.Hour), Creator: "admin"}); err != nil {
		t.Fatal(err)
	}
	a, err := st.Enroll(ctx, h, now, fleet.Agent{ID: id, Host: "host-" + id, CertSerial: "01"})
	if err != nil {
		t.Fatalf("enroll %s: %v", id, err)
	}
	if a.Group != "web" {
		t.Fatalf("group %q, want web", a.Group)
	}
}

func testFleetUsersAndTokens(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	if n, err := st.UserCount(ctx); err != nil || n != 0 {
		t.Fatalf("user count %d, %v", n, err)
	}
	if err := st.CreateUser(ctx, fleet.User{Name: "ann", Role: fleet.RoleAuditor}, []byte("h1")); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, fleet.User{Name: "ann", Role: fleet.RoleAdmin}, []byte("h2")); !errors.Is(err, fleet.ErrExists) {
		t.Fatalf("duplicate user: %v, want ErrExists", err)
	}
	u, err := st.UserByToken(ctx, []byte("h1"))
	if err != nil || u.Name != "ann" || u.Role != fleet.RoleAuditor {
		t.Fatalf("user by token: %+v, %v", u, err)
	}
	if _, err := st.UserByToken(ctx, []byte("h2")); !errors.Is(err, fleet.ErrTokenInvalid) {
		t.Fatalf("unknown token: %v", err)
	}
	now := time.Unix(1700000000, 0)
	// A token enrols exactly one agent, and never after it expired.
	enroll(t, st, "a1", now)
	if _, err := st.Enroll(ctx, []byte("tok-a1"), now, fleet.Agent{ID: "a2", Host: "h"}); !errors.Is(err, fleet.ErrTokenInvalid) {
		t.Fatalf("reused token: %v", err)
	}
	st.CreateEnrollToken(ctx, fleet.EnrollToken{Hash: []byte("old"), Group: "g", Expires: now, Creator: "admin"})
	if _, err := st.Enroll(ctx, []byte("old"), now, fleet.Agent{ID: "a3", Host: "h"}); !errors.Is(err, fleet.ErrTokenInvalid) {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := st.Agent(ctx, "a3"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("agent of refused enrolment: %v", err)
	}
}

func testFleetIngest(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	now := time.Unix(1700000000, 0)
	enroll(t, st, "a", now)
	enroll(t, st, "b", now)
	tests := []struct {
		name    string
		batches []fleet.Batch
		want    []fleet.IngestResult
	}{
		{"first", []fleet.Batch{{AgentID: "a", Records: recs(1, 3)}, {AgentID: "b", Records: recs(1, 1)}},
			[]fleet.IngestResult{{HighWater: 3}, {HighWater: 1}}},
		{"retry overlaps", []fleet.Batch{{AgentID: "a", Records: recs(2, 5)}}, []fleet.IngestResult{{HighWater: 5}}},
		{"replay", []fleet.Batch{{AgentID: "a", Records: recs(1, 5)}}, []fleet.IngestResult{{HighWater: 5, Err: fleet.ErrReplay}}},
		{"gap beside good", []fleet.Batch{{AgentID: "a", Records: recs(7, 8)}, {AgentID: "b", Records: recs(2, 2)}},
			[]fleet.IngestResult{{HighWater: 5, Err: fleet.ErrSequenceGap}, {HighWater: 2}}},
		{"unknown agent", []fleet.Batch{{AgentID: "zz", Records: recs(1, 1)}}, []fleet.IngestResult{{Err: fleet.ErrNotFound}}},
		{"one agent twice in a group", []fleet.Batch{{AgentID: "a", Records: recs(6, 7)}, {AgentID: "a", Records: recs(8, 9)}},
			[]fleet.IngestResult{{HighWater: 7}, {HighWater: 9}}},
	}
	for _, tc := range tests {
		got, err := st.Ingest(ctx, now, tc.batches)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i := range tc.want {
			if got[i].HighWater != tc.want[i].HighWater || !errors.Is(got[i].Err, tc.want[i].Err) || (got[i].Err == nil) != (tc.want[i].Err == nil) {
				t.Errorf("%s: batch %d: got %+v, want %+v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
	if n, _ := st.RecordCount(ctx, "a"); n != 9 {
		t.Errorf("agent a has %d records, want 9", n)
	}
	if n, _ := st.RecordCount(ctx, "b"); n != 2 {
		t.Errorf("agent b has %d records, want 2", n)
	}
	all, err := st.RecordsAfter(ctx, 0, 100)
	if err != nil || len(all) != 11 {
		t.Fatalf("records after 0: %d, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].RID <= all[i-1].RID {
			t.Fatalf("records not in commit order")
		}
	}
	if all[0].Host != "host-a" || all[0].Seq != 1 || string(all[0].Body) != `{"path":"/etc/f1"}` || !all[0].Time.Equal(time.Unix(1700000000, 1)) {
		t.Errorf("first record %+v", all[0])
	}
	rest, _ := st.RecordsAfter(ctx, all[3].RID, 2)
	if len(rest) != 2 || rest[0].RID != all[4].RID {
		t.Errorf("records after %d: %+v", all[3].RID, rest)
	}
	a, _ := st.Agent(ctx, "a")
	if a.HighWater != 9 {
		t.Errorf("high water %d, want 9", a.HighWater)
	}
}

func testFleetHeartbeat(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	t0 := time.Unix(1700000000, 0)
	enroll(t, st, "a", t0)
	enroll(t, st, "b", t0)
	if _, err := st.Heartbeat(ctx, "b", t0.Add(time.Minute), fleet.Status{Version: "1.0", WatcherBackend: "fanotify", SpoolDepth: 7}); err != nil {
		t.Fatal(err)
	}
	silent, err := st.MarkSilent(ctx, t0.Add(30*time.Second))
	if err != nil || len(silent) != 1 || silent[0].ID != "a" {
		t.Fatalf("mark silent: %+v, %v", silent, err)
	}
	if again, _ := st.MarkSilent(ctx, t0.Add(30*time.Second)); len(again) != 0 {
		t.Fatalf("silent agent reported twice")
	}
	was, err := st.Heartbeat(ctx, "a", t0.Add(2*time.Minute), fleet.Status{})
	if err != nil || !was {
		t.Fatalf("return of silent agent: %v, %v", was, err)
	}
	if _, err := st.Heartbeat(ctx, "nope", t0, fleet.Status{}); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("unknown agent heartbeat: %v", err)
	}
	as, err := st.Agents(ctx)
	if err != nil || len(as) != 2 || as[1].WatcherBackend != "fanotify" || as[1].SpoolDepth != 7 || as[0].Silent {
		t.Fatalf("agents %+v, %v", as, err)
	}
	if v, _ := st.Cursor(ctx, "c"); v != 0 {
		t.Fatalf("unset cursor %d", v)
	}
	st.SetCursor(ctx, "c", 5)
	st.SetCursor(ctx, "c", 9)
	if v, _ := st.Cursor(ctx, "c"); v != 9 {
		t.Fatalf("cursor %d, want 9", v)
	}
}
