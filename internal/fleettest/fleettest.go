// Package fleettest starts real hubs and agents on loopback for tests of
// the hub, the agent and the CLI: no mocks, a temp directory each, and
// helpers that talk to the API the way a client would.
package fleettest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/hub"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

// Hub is a hub running in this process.
type Hub struct {
	*hub.Hub
	Dir    string
	cancel context.CancelFunc
	done   chan error
}

// StartHub opens a hub in dir (a fresh temp dir if empty) listening on
// listen (127.0.0.1:0 if empty) and serves it until Stop or the test's end.
func StartHub(t testing.TB, dir, listen string, opts hub.Options) *Hub {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	opts.Dir, opts.Listen = dir, listen
	h, err := hub.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open hub: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	th := &Hub{Hub: h, Dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { th.done <- h.Serve(ctx) }()
	t.Cleanup(func() { th.Stop(t) })
	return th
}

// Stop shuts the hub down cleanly and waits for it.
func (h *Hub) Stop(t testing.TB) {
	t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.done; err != nil {
		t.Errorf("hub serve: %v", err)
	}
}

// Client is an HTTPS client trusting the hub's CA, optionally presenting
// a client certificate.
func Client(ca *x509.CertPool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: ca, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// Do sends a request with an optional bearer token and JSON body and
// returns the status and body.
func Do(t testing.TB, c *http.Client, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// EnrollToken creates an enrolment token with the admin token.
func EnrollToken(t testing.TB, h *Hub, admin string) string {
	t.Helper()
	st, body := Do(t, Client(h.CA().Pool(), nil), "POST", h.URL()+"/api/v1/enrollment-tokens", admin, hub.EnrollTokenRequest{Group: "web"})
	if st != http.StatusCreated {
		t.Fatalf("create enrolment token: %d %s", st, body)
	}
	var r hub.EnrollTokenResponse
	json.Unmarshal(body, &r)
	return r.Token
}

// Evidence returns every record in the hub's evidence log (SQLite hubs;
// the hub should be stopped or idle).
func Evidence(t testing.TB, dir string) []evidence.Record {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	size, err := db.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []evidence.Record
	err = db.ScanLeaves(ctx, 0, size, func(l *evidence.StoredLeaf) error {
		_, r, err := evidence.DecodeLeaf(l.Leaf)
		if err == nil {
			r.Body = append([]byte(nil), r.Body...)
			out = append(out, r)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// WaitFor polls cond until it holds or a minute passes: the condition is
// state in another process or goroutine (rows in a database) that has no
// event to wait on.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
