package hub_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleettest"
	"github.com/vigilfim/vigil/internal/hub"
	"github.com/vigilfim/vigil/internal/signing"
	"github.com/vigilfim/vigil/internal/store/postgres"
)

// copyFile copies one of a hub's state files to another hub's directory.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTwoHubsOnePostgres runs two hubs on one PostgreSQL database, sharing
// the CA and the signing key as a deployment of several hubs does, and has
// agents send to both at once, each agent alternating between them; then
// one hub stops and the other, still serving, must take the relay over.
// The evidence log must hold every record exactly once, in each agent's
// order, and verify against the checkpoints both hubs signed.
func TestTwoHubsOnePostgres(t *testing.T) {
	dsn := pgURL(t)
	dir1, dir2 := t.TempDir(), t.TempDir()
	h1 := fleettest.StartHub(t, dir1, "", hub.Options{DB: dsn})
	for _, f := range []string{"ca/ca.crt", "ca/ca.key", "hub.key"} {
		copyFile(t, filepath.Join(dir1, f), filepath.Join(dir2, f))
	}
	h2 := fleettest.StartHub(t, dir2, "", hub.Options{DB: dsn})
	hubs := []*fleettest.Hub{h1, h2}

	const agents, batches, per = 4, 20, 25
	clients := make([]*http.Client, agents)
	for i := range clients {
		dir := t.TempDir()
		// Enrol through either hub: the token is in the shared database.
		if _, err := agent.Enroll(t.Context(), dir, hubs[i%2].URL(), fleettest.EnrollToken(t, hubs[(i+1)%2], h1.AdminToken), fmt.Sprintf("web%d", i)); err != nil {
			t.Fatal(err)
		}
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key"))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = fleettest.Client(h1.CA().Pool(), &cert)
	}
	// send has every agent send batches [from, to), batch b to hub
	// pick(i, b), all agents at once.
	send := func(from, to int, pick func(i, b int) *fleettest.Hub) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, agents)
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := from; b < to; b++ {
					body, _ := json.Marshal(batch(uint64(b*per+1), uint64((b+1)*per)))
					resp, err := c.Post(pick(i, b).URL()+"/api/v1/agent/records", "application/json", bytes.NewReader(body))
					if err != nil {
						errs <- err
						return
					}
					out, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						errs <- fmt.Errorf("agent %d batch %d: %d %s", i, b, resp.StatusCode, out)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	// Half the batches to both hubs, each agent alternating.
	send(0, batches/2, func(i, b int) *fleettest.Hub { return hubs[(i+b)%2] })
	// The first hub (most likely the relay) stops: the second, still
	// serving, takes the lease over and relays the rest on its own.
	h1.Stop(t)
	send(batches/2, batches, func(int, int) *fleettest.Hub { return h2 })
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fleettest.WaitFor(t, "the running hub to relay every record", func() bool {
		size, err := db.LogSize(ctx)
		n := 0
		if err == nil {
			db.ScanLeaves(ctx, 0, size, func(l *evidence.StoredLeaf) error {
				if l.Kind == evidence.KindChange {
					n++
				}
				return nil
			})
		}
		return n >= agents*batches*per
	})
	h2.Stop(t)

	size, err := db.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]uint64{} // agent -> last seq
	total := 0
	err = db.ScanLeaves(ctx, 0, size, func(l *evidence.StoredLeaf) error {
		if l.Kind != evidence.KindChange {
			return nil
		}
		_, r, err := evidence.DecodeLeaf(l.Leaf)
		if err != nil {
			return err
		}
		var b struct {
			Agent string `json:"agent"`
			Seq   uint64 `json:"seq"`
		}
		json.Unmarshal(r.Body, &b)
		if b.Seq != seen[b.Agent]+1 {
			return fmt.Errorf("leaf %d: agent %s seq %d after %d: duplicated, lost or out of order", l.Index, b.Agent, b.Seq, seen[b.Agent])
		}
		seen[b.Agent] = b.Seq
		total++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != agents || total != agents*batches*per {
		t.Fatalf("evidence holds %d changes of %d agents, want %d of %d", total, len(seen), agents*batches*per, agents)
	}
	key, err := signing.LoadOrCreate(filepath.Join(dir1, "hub.key"), "vigil-hub")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(ctx, db, evidence.VerifyOptions{Verifier: key.Verifier()})
	if err != nil {
		t.Fatalf("verify the shared evidence log: %v", err)
	}
	if rep.Size != size || rep.Checkpoints == 0 || rep.Unsigned != 0 {
		t.Fatalf("verification %+v of a log of %d", rep, size)
	}
}

// TestAdminAcrossHubs: what an admin does through one hub (a group policy,
// a revocation) holds on another hub sharing the database.
func TestAdminAcrossHubs(t *testing.T) {
	dsn := pgURL(t)
	dir1, dir2 := t.TempDir(), t.TempDir()
	h1 := fleettest.StartHub(t, dir1, "", hub.Options{DB: dsn})
	for _, f := range []string{"ca/ca.crt", "ca/ca.key", "hub.key"} {
		copyFile(t, filepath.Join(dir1, f), filepath.Join(dir2, f))
	}
	h2 := fleettest.StartHub(t, dir2, "", hub.Options{DB: dsn})
	admin := h1.AdminToken
	adir := t.TempDir()
	st, err := agent.Enroll(t.Context(), adir, h1.URL(), fleettest.EnrollToken(t, h1, admin), "web1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(adir, "agent.crt"), filepath.Join(adir, "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := fleettest.Client(h1.CA().Pool(), &cert)

	if status, body := putPolicy(t, h1, admin, "web", webPolicy); status != 200 {
		t.Fatalf("upload through hub 1: %d %s", status, body)
	}
	if doc := signedPolicy(t, h2, c, st); doc.Policy != webPolicy {
		t.Fatalf("hub 2 serves %+v, want the policy uploaded through hub 1", doc)
	}
	users := fleettest.Client(h1.CA().Pool(), nil)
	if status, body := fleettest.Do(t, users, "POST", h1.URL()+"/api/v1/hosts/"+st.AgentID+"/revoke", admin, nil); status != 200 {
		t.Fatalf("revoke through hub 1: %d %s", status, body)
	}
	status, body := doPost(t, c, h2.URL()+"/api/v1/agent/records", batch(1, 1))
	if e := errCode(t, body); status != 403 || e.Code != "revoked" {
		t.Fatalf("hub 2 after the revocation: %d %+v", status, e)
	}
}
