package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleettest"
	"github.com/vigilfim/vigil/internal/hub"
)

// TestPolicyAppliedThenRevoked runs a real agent against a hub: an upload
// of its group's policy reaches the running watcher (restarted with it) and
// the inventory, and a revocation stops the agent.
func TestPolicyAppliedThenRevoked(t *testing.T) {
	h := fleettest.StartHub(t, "", "", hub.Options{Heartbeat: time.Second})
	admin := h.AdminToken
	dir := t.TempDir()
	st, err := agent.Enroll(t.Context(), dir, h.URL(), fleettest.EnrollToken(t, h, admin), "web1")
	if err != nil {
		t.Fatal(err)
	}
	policies := make(chan string, 4)
	a, err := agent.Open(t.Context(), agent.Config{Dir: dir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Watch: func(ctx context.Context, pol []byte, _ *agent.Sink) error {
			policies <- string(pol)
			<-ctx.Done()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()

	first := <-policies
	const webPolicy = "version: 1\nname: web\nrules:\n  - path: /srv/www\n"
	if first == webPolicy {
		t.Fatal("agent started with the uploaded policy before the upload")
	}
	users := fleettest.Client(h.CA().Pool(), nil)
	status, body := fleettest.Do(t, users, "PUT", h.URL()+"/api/v1/groups/web/policy", admin, []byte(webPolicy))
	if status != 200 {
		t.Fatalf("upload: %d %s", status, body)
	}
	var info hub.PolicyInfo
	json.Unmarshal(body, &info)
	if got := <-policies; got != webPolicy {
		t.Fatalf("watcher restarted with %q, want the uploaded policy", got)
	}
	fleettest.WaitFor(t, "the inventory to show the new policy and its record", func() bool {
		ag, err := h.Store().Agent(t.Context(), st.AgentID)
		return err == nil && ag.PolicyVersion == info.Version && ag.HighWater >= 1
	})

	status, body = fleettest.Do(t, users, "POST", h.URL()+"/api/v1/hosts/"+st.AgentID+"/revoke", admin, nil)
	if status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	select {
	case err := <-done:
		if !errors.Is(err, fleet.ErrRevoked) {
			t.Fatalf("agent ended with %v, want a revocation", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("revoked agent still running after a minute")
	}

	h.Stop(t)
	applied := false
	for _, r := range fleettest.Evidence(t, h.Dir) {
		var b struct {
			Record struct {
				Body map[string]string `json:"body"`
			} `json:"record"`
		}
		json.Unmarshal(r.Body, &b)
		if r.Kind == "health" && b.Record.Body["event"] == "policy_applied" && b.Record.Body["to"] == info.Version {
			applied = true
		}
	}
	if !applied {
		t.Fatal("no policy_applied health record from the agent in the evidence log")
	}
}

// TestTamperedPolicyNotApplied: the agent verifies the hub's signature
// before parsing; a stored copy edited on the host is refused, and the
// watcher does not start on it.
func TestTamperedPolicyNotApplied(t *testing.T) {
	h := fleettest.StartHub(t, "", "", hub.Options{})
	dir := t.TempDir()
	if _, err := agent.Enroll(t.Context(), dir, h.URL(), fleettest.EnrollToken(t, h, h.AdminToken), "web1"); err != nil {
		t.Fatal(err)
	}
	policies := make(chan string, 4)
	run := func() (*agent.Agent, context.CancelFunc, chan error) {
		a, err := agent.Open(t.Context(), agent.Config{Dir: dir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Heartbeat: time.Hour,
			Watch: func(ctx context.Context, pol []byte, _ *agent.Sink) error {
				policies <- string(pol)
				<-ctx.Done()
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		return a, cancel, done
	}
	a, cancel, done := run()
	<-policies // fetched, verified and stored
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.Close()

	// The hub goes away and someone on the host edits the copy the agent
	// falls back on.
	h.Stop(t)
	path := filepath.Join(dir, "policy.note")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(b, []byte(`"version":"`), []byte(`"version":"x`), 1)
	if bytes.Equal(tampered, b) {
		t.Fatalf("policy note has no version field: %s", b)
	}
	if err := os.WriteFile(path, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	a, cancel, done = run()
	defer a.Close()
	fleettest.WaitFor(t, "the agent to refuse the stored policy", func() bool {
		s, err := agent.ReadStatus(dir)
		return err == nil && strings.Contains(s.LastError, "verify policy")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-policies:
		t.Fatalf("watcher started on a tampered policy: %q", p)
	default:
	}
}
