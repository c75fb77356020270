package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleettest"
	"github.com/vigilfim/vigil/internal/hub"
)

// copySpool copies the spool's files (database, WAL, shared memory) from
// one directory to another, as a backup or a restore does.
func copySpool(t *testing.T, from, to string) {
	t.Helper()
	for _, f := range []string{"spool.sqlite", "spool.sqlite-wal", "spool.sqlite-shm"} {
		os.Remove(filepath.Join(to, f))
		b, err := os.ReadFile(filepath.Join(from, f))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// spoolAppend appends changes with the given body numbers to a closed
// agent's spool.
func spoolAppend(t *testing.T, dir string, is ...int) {
	t.Helper()
	sp, err := agent.OpenSpool(t.Context(), filepath.Join(dir, "spool.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for _, i := range is {
		if _, err := sp.Append(t.Context(), fleet.KindChange, time.Now(), change(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// runUntil runs the agent in dir until the hub's mark for it reaches hw.
func runUntil(t *testing.T, h *fleettest.Hub, dir, id string, hw uint64) {
	t.Helper()
	a, err := agent.Open(t.Context(), agent.Config{Dir: dir, Batch: 3, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	fleettest.WaitFor(t, "the hub to acknowledge the spool", func() bool {
		ag, err := h.Store().Agent(t.Context(), id)
		d, _ := a.Spool().Depth(t.Context())
		return err == nil && ag.HighWater >= hw && d == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.Close()
}

// TestRestoredSpool restores an agent's spool from a backup taken while it
// held undelivered records, after the original went on to deliver those
// and more: the restored spool resends the old records (the hub has them)
// and numbers new ones under sequence numbers the hub already holds. The
// hub must store each old record once and every new one, none dropped as
// a "retry".
func TestRestoredSpool(t *testing.T) {
	h := fleettest.StartHub(t, "", "", hub.Options{})
	dir, backup := t.TempDir(), t.TempDir()
	st, err := agent.Enroll(t.Context(), dir, h.URL(), fleettest.EnrollToken(t, h, h.AdminToken), "web1")
	if err != nil {
		t.Fatal(err)
	}
	spoolAppend(t, dir, 1, 2, 3, 4, 5)
	copySpool(t, dir, backup) // backup: records 1-5 waiting, counter at 5
	spoolAppend(t, dir, 6, 7, 8)
	runUntil(t, h, dir, st.AgentID, 8)

	copySpool(t, backup, dir) // restore
	spoolAppend(t, dir, 101, 102, 103)
	// Seqs 6-8 again, for other records: the hub refuses with
	// sequence_reused at 6; the agent drops 1-5 and renumbers to 9-11.
	runUntil(t, h, dir, st.AgentID, 12)

	h.Stop(t)
	var bodies []int
	reused := 0
	for _, r := range fleettest.Evidence(t, h.Dir) {
		var b struct {
			Seq    uint64 `json:"seq"`
			Reason string `json:"reason"`
			Record struct {
				Body map[string]any `json:"body"`
			} `json:"record"`
		}
		json.Unmarshal(r.Body, &b)
		switch {
		case r.Kind == evidence.KindChange:
			if b.Seq != uint64(len(bodies)+1) {
				t.Fatalf("change %d has seq %d", len(bodies)+1, b.Seq)
			}
			bodies = append(bodies, int(b.Record.Body["i"].(float64)))
		case r.Kind == evidence.KindHealth && b.Record.Body["event"] == "spool_sequence_reused":
			reused++
			if b.Record.Body["diverged_at"] != 6.0 || b.Record.Body["renumbered"] != 3.0 {
				t.Errorf("agent's health record %v", b.Record.Body)
			}
		case strings.Contains(b.Reason, "reused"):
			reused++
		}
	}
	want := []int{1, 2, 3, 4, 5, 6, 7, 8, 101, 102, 103}
	if len(bodies) != len(want) {
		t.Fatalf("evidence holds changes %v, want %v", bodies, want)
	}
	for i := range want {
		if bodies[i] != want[i] {
			t.Fatalf("evidence holds changes %v, want %v", bodies, want)
		}
	}
	if reused != 2 {
		t.Fatalf("%d records of the reuse (want the hub's refusal and the agent's health record)", reused)
	}
}
