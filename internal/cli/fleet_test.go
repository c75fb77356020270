package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleettest"
	"github.com/vigilfim/vigil/internal/hub"
)

// startServer runs `vigil server` in-process on loopback and returns its
// URL, the admin token and the hub directory.
func startServer(t *testing.T, policyFile string) (string, string, string) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stdout bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"server", "--dir", dir, "--listen", "127.0.0.1:0", "--policy", policyFile}, strings.NewReader(""), &stdout, pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("server exit %d", code)
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if _, rest, ok := strings.Cut(sc.Text(), "hub listening on "); ok {
			go io.Copy(io.Discard, pr)
			url := strings.Fields(rest)[0]
			token := strings.TrimSpace(stdout.String()[strings.LastIndex(stdout.String(), " ")+1:])
			return url, token, dir
		}
	}
	t.Fatal("server ended without listening")
	return "", "", ""
}

func TestServerAgentStatus(t *testing.T) {
	tree := t.TempDir()
	writeFile(t, filepath.Join(tree, "app.conf"), "v1\n", 0o644)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, pol, fmt.Sprintf("version: 1\nname: fleet-test\nrules:\n  - path: %s\n", tree), 0o644)
	url, admin, hubDir := startServer(t, pol)
	if admin == "" {
		t.Fatal("no admin token printed")
	}
	caPEM, err := os.ReadFile(filepath.Join(hubDir, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := fleettest.Client(pool, nil)
	status, body := fleettest.Do(t, c, "POST", url+"/api/v1/enrollment-tokens", admin, hub.EnrollTokenRequest{Group: "web"})
	if status != http.StatusCreated {
		t.Fatalf("token: %d %s", status, body)
	}
	var tok hub.EnrollTokenResponse
	json.Unmarshal(body, &tok)

	agentDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var agentErr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"agent", "--dir", agentDir, "--server", url, "--enroll", tok.Token}, strings.NewReader(""), io.Discard, &agentErr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("agent exit %d: %s", code, agentErr.String())
		}
	}()
	hosts := func() []fleet.Agent {
		_, b := fleettest.Do(t, c, "GET", url+"/api/v1/hosts", admin, nil)
		var r struct{ Hosts []fleet.Agent }
		json.Unmarshal(b, &r)
		return r.Hosts
	}
	// Once the watch runs, change a file until a record reaches the hub
	// (the first change may land before the watcher is in place, and is
	// then reported by the startup check instead: either way it arrives).
	fleettest.WaitFor(t, "the agent's watcher", func() bool {
		b, _ := os.ReadFile(filepath.Join(agentDir, "status.json"))
		return bytes.Contains(b, []byte(`"watcher_backend"`))
	})
	writeFile(t, filepath.Join(tree, "app.conf"), "v2 changed\n", 0o644)
	fleettest.WaitFor(t, "a change at the hub", func() bool {
		hs := hosts()
		return len(hs) == 1 && hs[0].HighWater > 0
	})
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"status", "--dir", agentDir}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("status: %d %s", code, errOut.String())
	}
	for _, want := range []string{"running", "connected", "records waiting"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestAgentUnitMatchesContrib(t *testing.T) {
	b, err := os.ReadFile("../../contrib/vigil-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != agentUnit {
		t.Fatal("contrib/vigil-agent.service differs from the unit `vigil agent install` writes")
	}
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"agent", "install", "--unit-dir", dir}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("install: %d %s", code, errOut.String())
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "vigil-agent.service")); string(got) != agentUnit {
		t.Fatal("installed unit differs")
	}
}

func TestStatusNotEnrolled(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"status", "--dir", t.TempDir()}, strings.NewReader(""), &out, &errOut); code != ExitError ||
		!strings.Contains(errOut.String(), "no agent enrolled") {
		t.Fatalf("status: %d %q", code, errOut.String())
	}
}

// TestAgentRevokedExitStatus: a revoked agent exits with its own status,
// which the systemd unit does not restart.
func TestAgentRevokedExitStatus(t *testing.T) {
	tree := t.TempDir()
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, pol, fmt.Sprintf("version: 1\nname: fleet-test\nrules:\n  - path: %s\n", tree), 0o644)
	url, admin, hubDir := startServer(t, pol)
	caPEM, err := os.ReadFile(filepath.Join(hubDir, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := fleettest.Client(pool, nil)
	status, body := fleettest.Do(t, c, "POST", url+"/api/v1/enrollment-tokens", admin, hub.EnrollTokenRequest{})
	if status != http.StatusCreated {
		t.Fatalf("token: %d %s", status, body)
	}
	var tok hub.EnrollTokenResponse
	json.Unmarshal(body, &tok)
	agentDir := t.TempDir()
	st, err := agent.Enroll(t.Context(), agentDir, url, tok.Token, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := fleettest.Do(t, c, "POST", url+"/api/v1/hosts/"+st.AgentID+"/revoke", admin, nil); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	var errOut bytes.Buffer
	if code := Main(context.Background(), []string{"agent", "--dir", agentDir}, strings.NewReader(""), io.Discard, &errOut); code != ExitRevoked ||
		!strings.Contains(errOut.String(), "agent revoked") {
		t.Fatalf("revoked agent: exit %d, %s", code, errOut.String())
	}
}
