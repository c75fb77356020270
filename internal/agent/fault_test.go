package agent_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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

// TestMain doubles as the hub process of TestHubKilledMidStream: the test
// binary re-executes itself with VIGIL_TEST_HUB_DIR set, so the hub can be
// killed with SIGKILL like a real one.
func TestMain(m *testing.M) {
	if dir := os.Getenv("VIGIL_TEST_HUB_DIR"); dir != "" {
		os.Exit(hubChild(dir, os.Getenv("VIGIL_TEST_HUB_LISTEN")))
	}
	os.Exit(m.Run())
}

func hubChild(dir, listen string) int {
	h, err := hub.Open(context.Background(), hub.Options{Dir: dir, Listen: listen})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ready %s %s\n", h.Addr(), h.AdminToken)
	if err := h.Serve(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild starts a hub process and returns it with its address and
// (first start only) admin token, once it listens.
func startChild(t *testing.T, dir, listen string) (*exec.Cmd, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HUB_DIR="+dir, "VIGIL_TEST_HUB_LISTEN="+listen)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("hub child: %v", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "ready" {
		t.Fatalf("hub child said %q", line)
	}
	admin := ""
	if len(f) == 3 {
		admin = f[2]
	}
	return cmd, f[1], admin
}

// runAgent opens and runs the agent in dir until the test ends.
func runAgent(t *testing.T, dir string) *agent.Agent {
	t.Helper()
	a, err := agent.Open(t.Context(), agent.Config{Dir: dir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent run: %v", err)
		}
		a.Close()
	})
	return a
}

func change(i int) map[string]any {
	return map[string]any{"path": fmt.Sprintf("/etc/f%d", i), "i": i}
}

// checkDelivered stops nothing; it reads the hub's evidence log (the hub
// must be stopped) and checks that it holds exactly records 1..n of the
// agent, in order, each once, with the bodies the agent spooled.
func checkDelivered(t *testing.T, dir string, n int) {
	t.Helper()
	got := 0
	for _, r := range fleettest.Evidence(t, dir) {
		if r.Kind != evidence.KindChange {
			continue
		}
		var b struct {
			Seq    uint64 `json:"seq"`
			Record struct {
				Body struct {
					I int `json:"i"`
				} `json:"body"`
			} `json:"record"`
		}
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		got++
		if b.Seq != uint64(got) || b.Record.Body.I != got {
			t.Fatalf("evidence change %d is seq %d body %d: out of order or duplicated", got, b.Seq, b.Record.Body.I)
		}
	}
	if got != n {
		t.Fatalf("evidence holds %d changes, want %d", got, n)
	}
}

func TestOutageThenDeliveryInOrder(t *testing.T) {
	n := 5000
	if testing.Short() {
		n = 500
	}
	h := fleettest.StartHub(t, "", "", hub.Options{})
	addr := h.Addr().String()
	dir := t.TempDir()
	if _, err := agent.Enroll(t.Context(), dir, h.URL(), fleettest.EnrollToken(t, h, h.AdminToken), "web1"); err != nil {
		t.Fatal(err)
	}
	a := runAgent(t, dir)
	fleettest.WaitFor(t, "the policy", func() bool { return a.Status().PolicyVersion != "" })
	h.Stop(t) // the hub is unreachable while every change happens

	recs := make([]fleet.Record, 0, 500)
	for i := 1; i <= n; i++ {
		b, _ := json.Marshal(change(i))
		recs = append(recs, fleet.Record{Kind: fleet.KindChange, Time: time.Now(), Body: b})
		if len(recs) == cap(recs) || i == n {
			if _, err := a.Spool().AppendRaw(t.Context(), recs); err != nil {
				t.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	fleettest.WaitFor(t, "the agent to notice the hub is down", func() bool {
		s := a.Status()
		return !s.HubConnected && s.LastError != ""
	})
	if d, _ := a.Spool().Depth(t.Context()); d != int64(n) {
		t.Fatalf("spool depth %d, want %d", d, n)
	}

	h2 := fleettest.StartHub(t, h.Dir, addr, hub.Options{})
	fleettest.WaitFor(t, "the spool to drain", func() bool {
		d, _ := a.Spool().Depth(t.Context())
		return d == 0
	})
	if s := a.Status(); s.Delivered != uint64(n) || !s.HubConnected {
		t.Fatalf("status after drain: %+v", s)
	}
	h2.Stop(t)
	checkDelivered(t, h.Dir, n)
}

func TestHubKilledMidStream(t *testing.T) {
	hubDir := t.TempDir()
	cmd, addr, admin := startChild(t, hubDir, "127.0.0.1:0")
	url := "https://" + addr
	dir := t.TempDir()
	// Enrol through the API like a real agent: the test process has no
	// hub object for the child.
	tok := enrollToken(t, hubDir, url, admin)
	if _, err := agent.Enroll(t.Context(), dir, url, tok, "web1"); err != nil {
		t.Fatal(err)
	}
	a := runAgent(t, dir)

	const total = 3000
	appendN := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := a.Spool().Append(t.Context(), fleet.KindChange, time.Now(), change(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(1, total/3)
	// Kill the hub (SIGKILL) while the agent is streaming: some batch is
	// in flight or just committed and not yet acknowledged.
	fleettest.WaitFor(t, "some records delivered", func() bool { return a.Status().Delivered > 0 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	appendN(total/3+1, 2*total/3)
	cmd2, _, _ := startChild(t, hubDir, addr)
	appendN(2*total/3+1, total)
	fleettest.WaitFor(t, "all records delivered", func() bool {
		d, _ := a.Spool().Depth(t.Context())
		return d == 0 && a.Status().Delivered == total
	})
	// Kill it again right after, then start it cleanly and stop it so the
	// evidence relay catches up: the log must still hold each record once.
	cmd2.Process.Kill()
	cmd2.Wait()
	h3 := fleettest.StartHub(t, hubDir, addr, hub.Options{})
	if n, err := h3.Store().RecordCount(t.Context(), a.Status().AgentID); err != nil || n != total {
		t.Fatalf("hub stored %d records, %v; want %d", n, err, total)
	}
	h3.Stop(t)
	checkDelivered(t, hubDir, total)
}

// enrollToken asks the child hub for an enrolment token over the API.
func enrollToken(t *testing.T, hubDir, url, admin string) string {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(hubDir, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509Pool(t, caPEM)
	status, body := fleettest.Do(t, fleettest.Client(pool, nil), "POST", url+"/api/v1/enrollment-tokens", admin, hub.EnrollTokenRequest{})
	if status != 201 {
		t.Fatalf("create token: %d %s", status, body)
	}
	var r hub.EnrollTokenResponse
	json.Unmarshal(body, &r)
	return r.Token
}

func TestCertificateRotation(t *testing.T) {
	h := fleettest.StartHub(t, "", "", hub.Options{})
	dir := t.TempDir()
	st, err := agent.Enroll(t.Context(), dir, h.URL(), fleettest.EnrollToken(t, h, h.AdminToken), "web1")
	if err != nil {
		t.Fatal(err)
	}
	a := runAgent(t, dir)
	old := a.Certificate()
	if err := a.Renew(t.Context()); err != nil {
		t.Fatalf("renew: %v", err)
	}
	cur := a.Certificate()
	if cur.SerialNumber.Cmp(old.SerialNumber) == 0 || cur.PublicKey.(*ecdsa.PublicKey).Equal(old.PublicKey) {
		t.Fatal("renewal kept the old certificate or key")
	}
	ag, err := h.Store().Agent(t.Context(), st.AgentID)
	if err != nil || ag.CertSerial != cur.SerialNumber.Text(16) {
		t.Fatalf("hub inventory serial %q, want %q (%v)", ag.CertSerial, cur.SerialNumber.Text(16), err)
	}
	// The renewed identity delivers, and survives a restart of the agent.
	if _, err := a.Spool().Append(t.Context(), fleet.KindChange, time.Now(), change(1)); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitFor(t, "delivery with the new certificate", func() bool { return a.Status().Delivered == 1 })
	again, err := agent.Open(t.Context(), agent.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Certificate().SerialNumber.Cmp(cur.SerialNumber) != 0 {
		t.Fatal("renewed certificate not persisted")
	}
}
