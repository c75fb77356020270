package hub_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleetca"
	"github.com/vigilfim/vigil/internal/fleettest"
	"github.com/vigilfim/vigil/internal/hub"
)

// enrolled starts a hub, enrols one agent and returns an mTLS client for it.
func enrolled(t *testing.T, opts hub.Options) (*fleettest.Hub, string, agent.State, *http.Client) {
	t.Helper()
	h, admin, st, c, _ := enrolledIn(t, opts)
	return h, admin, st, c
}

// enrolledIn is enrolled that also returns the agent's directory.
func enrolledIn(t *testing.T, opts hub.Options) (*fleettest.Hub, string, agent.State, *http.Client, string) {
	t.Helper()
	h := fleettest.StartHub(t, "", "", opts)
	admin := h.AdminToken
	if admin == "" {
		t.Fatal("fresh hub printed no admin token")
	}
	dir := t.TempDir()
	st, err := agent.Enroll(t.Context(), dir, h.URL(), fleettest.EnrollToken(t, h, admin), "web1")
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	return h, admin, st, fleettest.Client(h.CA().Pool(), &cert), dir
}

func batch(from, to uint64) hub.IngestRequest {
	var r hub.IngestRequest
	for s := from; s <= to; s++ {
		r.Records = append(r.Records, fleet.Record{Seq: s, Kind: fleet.KindChange, Time: time.Unix(1700000000, 0).UTC(),
			Body: json.RawMessage(fmt.Sprintf(`{"path": "/etc/f%d", "who": {"attribution": "audit", "uid": 0, "auid": 1000, "user": "root", "login_user": "ann"}}`, s))})
	}
	return r
}

func errCode(t *testing.T, body []byte) hub.ErrorBody {
	t.Helper()
	var e hub.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e
}

func TestIngestAndRefusals(t *testing.T) {
	h, admin, st, c := enrolled(t, hub.Options{})
	url := h.URL() + "/api/v1/agent/records"

	// A foreign CA's certificate for the same agent id, and the hub's own
	// CA's certificate that has expired.
	foreignCA, err := fleetca.LoadOrCreate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pastCA, err := fleetca.LoadOrCreate(filepath.Join(h.Dir, "ca"), func() time.Time { return time.Now().Add(-60 * 24 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	certFrom := func(ca *fleetca.CA) *http.Client {
		keyPEM, csrPEM, err := fleetca.NewKeyAndCSR("x")
		if err != nil {
			t.Fatal(err)
		}
		crt, err := ca.SignCSR(csrPEM, st.AgentID)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(fleetca.PEMCert(crt), keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return fleettest.Client(h.CA().Pool(), &pair)
	}
	anon := fleettest.Client(h.CA().Pool(), nil)
	big := []byte(`{"records":[{"seq":1,"kind":"change","time":"2024-01-01T00:00:00Z","body":{"x":"` + strings.Repeat("a", hub.MaxBody) + `"}}]}`)
	badMiddle := batch(1, 3)
	badMiddle.Records[1].Body = json.RawMessage(`[1]`)

	tests := []struct {
		name   string
		client *http.Client
		body   any
		status int
		code   string
		hw     uint64
	}{
		{"first batch", c, batch(1, 10), 200, "", 10},
		{"retry overlapping", c, batch(5, 12), 200, "", 12},
		{"replayed batch", c, batch(1, 12), 409, "replay", 12},
		{"gap", c, batch(20, 21), 409, "sequence_gap", 12},
		{"malformed JSON", c, []byte(`{"records": [`), 400, "malformed", 0},
		{"unknown field", c, []byte(`{"records": [], "x": 1}`), 400, "malformed", 0},
		{"bad record in the middle", c, badMiddle, 400, "malformed", 0},
		{"oversized", c, big, 413, "too_large", 0},
		{"no client certificate", anon, batch(13, 13), 401, "no_client_certificate", 0},
		{"foreign certificate", certFrom(foreignCA), batch(13, 13), 401, "foreign_certificate", 0},
		{"expired certificate", certFrom(pastCA), batch(13, 13), 401, "certificate_expired", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := fleettest.Do(t, tc.client, "POST", url, "", tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.code != "" {
				e := errCode(t, body)
				if e.Code != tc.code || e.Error == "" {
					t.Fatalf("error %+v, want code %s", e, tc.code)
				}
				if tc.hw != 0 && (e.HighWater == nil || *e.HighWater != tc.hw) {
					t.Fatalf("high water %v, want %d", e.HighWater, tc.hw)
				}
				return
			}
			var r hub.IngestResponse
			json.Unmarshal(body, &r)
			if r.HighWater != tc.hw {
				t.Fatalf("high water %d, want %d", r.HighWater, tc.hw)
			}
		})
	}

	// Enrolment refusals: a wrong token, a token used twice.
	tok := fleettest.EnrollToken(t, h, admin)
	if _, err := agent.Enroll(t.Context(), t.TempDir(), h.URL(), tok, "a"); err != nil {
		t.Fatal(err)
	}
	for name, tk := range map[string]string{
		"reused": tok,
		"wrong":  hub.TokenPrefix + "AAAA." + h.CA().Fingerprint(),
	} {
		_, err := agent.Enroll(t.Context(), t.TempDir(), h.URL(), tk, "b")
		if ae, ok := err.(interface{ Unwrap() error }); !ok || !strings.Contains(fmt.Sprint(ae), "invalid_token") {
			t.Errorf("%s token: %v, want an invalid_token refusal", name, err)
		}
	}
	// A token naming another CA is refused by the agent before it sends
	// anything.
	if _, err := agent.Enroll(t.Context(), t.TempDir(), h.URL(), hub.TokenPrefix+"AAAA."+foreignCA.Fingerprint(), "c"); err == nil ||
		!strings.Contains(err.Error(), "not issued by the CA named in the token") {
		t.Errorf("foreign hub: %v", err)
	}

	// Roles: an auditor reads the inventory but cannot create tokens.
	status, body := fleettest.Do(t, anon, "POST", h.URL()+"/api/v1/users", admin, hub.UserRequest{Name: "aud", Role: fleet.RoleAuditor})
	if status != 201 {
		t.Fatalf("create auditor: %d %s", status, body)
	}
	var u hub.UserResponse
	json.Unmarshal(body, &u)
	if status, _ := fleettest.Do(t, anon, "POST", h.URL()+"/api/v1/enrollment-tokens", u.Token, hub.EnrollTokenRequest{}); status != 403 {
		t.Errorf("auditor created a token: %d", status)
	}
	status, body = fleettest.Do(t, anon, "GET", h.URL()+"/api/v1/hosts", u.Token, nil)
	if status != 200 || !strings.Contains(string(body), st.AgentID) {
		t.Errorf("auditor host list: %d %s", status, body)
	}
	if status, _ := fleettest.Do(t, anon, "GET", h.URL()+"/api/v1/hosts", "nope", nil); status != 401 {
		t.Errorf("bad API token: %d", status)
	}

	// Stop the hub (finishing the evidence relay) and count: each of the 12
	// records exactly once, in order, and every refusal recorded.
	h.Stop(t)
	if n, err := countRecords(t, h); err != nil || n != 12 {
		t.Fatalf("stored %d records, %v; want 12", n, err)
	}
	var seqs []uint64
	reasons := map[string]bool{}
	for _, r := range fleettest.Evidence(t, h.Dir) {
		var b struct {
			Seq    uint64 `json:"seq"`
			Agent  string `json:"agent"`
			Event  string `json:"event"`
			Reason string `json:"reason"`
		}
		json.Unmarshal(r.Body, &b)
		switch {
		case r.Kind == evidence.KindChange:
			seqs = append(seqs, b.Seq)
			if r.Actor != "uid=0(root) auid=1000(ann)" || r.Host != "web1" {
				t.Errorf("change evidence actor %q host %q", r.Actor, r.Host)
			}
		case b.Event == "request_refused":
			reasons[b.Reason] = true
		}
	}
	if len(seqs) != 12 {
		t.Fatalf("evidence holds %d change records, want 12", len(seqs))
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("evidence change %d has seq %d", i, s)
		}
	}
	for _, want := range []string{"batch already ingested", "sequence gap", "request too large", "invalid token",
		"no client certificate", "client certificate not issued by this hub", "client certificate expired or not yet valid", "not allowed for this role"} {
		if !reasons[want] {
			t.Errorf("no evidence of refusal %q (have %v)", want, reasons)
		}
	}
}

func countRecords(t *testing.T, h *fleettest.Hub) (int, error) {
	n := 0
	for _, r := range fleettest.Evidence(t, h.Dir) {
		if r.Kind == evidence.KindChange {
			n++
		}
	}
	return n, nil
}

func TestSilenceAndReturn(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	h, _, _, c := enrolled(t, hub.Options{Now: clock, Heartbeat: time.Hour, Missed: 3})
	if err := h.CheckSilence(t.Context()); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(4 * time.Hour))
	if err := h.CheckSilence(t.Context()); err != nil {
		t.Fatal(err)
	}
	as, _ := h.Store().Agents(t.Context())
	if len(as) != 1 || !as[0].Silent {
		t.Fatalf("agent not silent after 4 missed heartbeats: %+v", as)
	}
	status, body := fleettest.Do(t, c, "POST", h.URL()+"/api/v1/agent/heartbeat", "", fleet.Status{Version: "test", WatcherBackend: "fanotify"})
	if status != 200 {
		t.Fatalf("heartbeat: %d %s", status, body)
	}
	h.Stop(t)
	var events []string
	for _, r := range fleettest.Evidence(t, h.Dir) {
		var b struct{ Event string }
		json.Unmarshal(r.Body, &b)
		if b.Event != "" {
			events = append(events, r.Kind+":"+b.Event)
		}
	}
	want := "health:agent_silent alert:agent_silent health:agent_returned"
	if got := strings.Join(events, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	h, _, _, c := enrolled(t, hub.Options{})
	status, body := fleettest.Do(t, c, "GET", h.URL()+"/api/v1/nope", "", nil)
	if status != 404 || errCode(t, body).Code != "not_found" {
		t.Fatalf("unknown path: %d %s", status, body)
	}
	if status, body = fleettest.Do(t, c, "GET", h.URL()+"/api/v1/health", "", nil); status != 200 {
		t.Fatalf("health: %d %s", status, body)
	}
}

func doPost(t *testing.T, c *http.Client, url string, body any) (int, []byte) {
	t.Helper()
	return fleettest.Do(t, c, "POST", url, "", body)
}
