package hub_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleettest"
	"github.com/vigilfim/vigil/internal/hub"
)

const webPolicy = "version: 1\nname: web\nrules:\n  - path: /srv/www\n"

// putPolicy uploads a group's policy as YAML.
func putPolicy(t *testing.T, h *fleettest.Hub, token, group, yaml string) (int, []byte) {
	t.Helper()
	return fleettest.Do(t, fleettest.Client(h.CA().Pool(), nil), "PUT", h.URL()+"/api/v1/groups/"+group+"/policy", token, []byte(yaml))
}

// signedPolicy fetches the agent's policy and opens it with the key the
// agent got at enrolment, as the agent does.
func signedPolicy(t *testing.T, h *fleettest.Hub, c *http.Client, st agent.State) hub.PolicyDocument {
	t.Helper()
	status, body := fleettest.Do(t, c, "GET", h.URL()+"/api/v1/agent/policy", "", nil)
	if status != 200 {
		t.Fatalf("agent policy: %d %s", status, body)
	}
	v, err := note.NewVerifier(st.PolicyKey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(body, note.VerifierList(v))
	if err != nil {
		t.Fatalf("policy signature: %v", err)
	}
	var doc hub.PolicyDocument
	if err := json.Unmarshal([]byte(n.Text), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func newUser(t *testing.T, h *fleettest.Hub, admin, name string, role fleet.Role) string {
	t.Helper()
	status, body := fleettest.Do(t, fleettest.Client(h.CA().Pool(), nil), "POST", h.URL()+"/api/v1/users", admin, hub.UserRequest{Name: name, Role: role})
	if status != 201 {
		t.Fatalf("create %s: %d %s", name, status, body)
	}
	var u hub.UserResponse
	json.Unmarshal(body, &u)
	return u.Token
}

func TestGroupPolicies(t *testing.T) {
	h, admin, st, c := enrolled(t, hub.Options{})
	if st.Group != "web" {
		t.Fatalf("enrolled in group %q", st.Group)
	}
	def := signedPolicy(t, h, c, st)
	if def.Group != "web" || def.Policy == "" {
		t.Fatalf("default policy for web: %+v", def)
	}
	auditor := newUser(t, h, admin, "aud", fleet.RoleAuditor)

	// An invalid upload is refused with every problem at its position.
	status, body := putPolicy(t, h, admin, "web", "version: 1\nname: web\nrules:\n  - path: /srv\n    chekcs: [sha256]\n")
	e := errCode(t, body)
	if status != 400 || e.Code != "invalid_policy" || len(e.Details) == 0 || !strings.HasPrefix(e.Details[0], "groups/web/policy.yaml:5:5: ") {
		t.Fatalf("invalid policy: %d %+v", status, e)
	}
	if status, _ := putPolicy(t, h, auditor, "web", webPolicy); status != 403 {
		t.Fatalf("auditor uploaded a policy: %d", status)
	}
	if status, body := putPolicy(t, h, admin, "Bad Group", webPolicy); status != 400 {
		t.Fatalf("bad group name: %d %s", status, body)
	}

	status, body = putPolicy(t, h, admin, "web", webPolicy)
	if status != 200 {
		t.Fatalf("upload: %d %s", status, body)
	}
	var info hub.PolicyInfo
	json.Unmarshal(body, &info)
	if info.Version == "" || info.Version == def.Version || info.UpdatedBy != "admin" {
		t.Fatalf("upload answer %+v", info)
	}
	doc := signedPolicy(t, h, c, st)
	if doc.Group != "web" || doc.Version != info.Version || doc.Policy != webPolicy {
		t.Fatalf("agent got %+v, want the uploaded policy", doc)
	}
	// Any role reads it back.
	status, body = fleettest.Do(t, fleettest.Client(h.CA().Pool(), nil), "GET", h.URL()+"/api/v1/groups/web/policy", auditor, nil)
	if status != 200 || !strings.Contains(string(body), info.Version) || !strings.Contains(string(body), "/srv/www") {
		t.Fatalf("read policy: %d %s", status, body)
	}
	// The heartbeat announces the group's version; the agent's report of
	// what it runs is the inventory's policy version.
	status, body = fleettest.Do(t, c, "POST", h.URL()+"/api/v1/agent/heartbeat", "", fleet.Status{PolicyVersion: doc.Version})
	var hb hub.HeartbeatResponse
	json.Unmarshal(body, &hb)
	if status != 200 || hb.PolicyVersion != info.Version {
		t.Fatalf("heartbeat: %d %s", status, body)
	}
	if a, _ := h.Store().Agent(t.Context(), st.AgentID); a.PolicyVersion != info.Version {
		t.Fatalf("inventory policy version %q, want %q", a.PolicyVersion, info.Version)
	}

	// Moving the host to a group without a policy gives it the default.
	if status, body := fleettest.Do(t, fleettest.Client(h.CA().Pool(), nil), "PUT", h.URL()+"/api/v1/hosts/"+st.AgentID+"/group", auditor, hub.GroupRequest{Group: "db"}); status != 403 {
		t.Fatalf("auditor moved a host: %d %s", status, body)
	}
	status, body = fleettest.Do(t, fleettest.Client(h.CA().Pool(), nil), "PUT", h.URL()+"/api/v1/hosts/"+st.AgentID+"/group", admin, hub.GroupRequest{Group: "db"})
	if status != 200 {
		t.Fatalf("move host: %d %s", status, body)
	}
	if doc := signedPolicy(t, h, c, st); doc.Group != "db" || doc.Version != def.Version {
		t.Fatalf("after the move the agent got %+v, want the default policy for db", doc)
	}

	h.Stop(t)
	var actions []string
	refusedPolicy := false
	for _, r := range fleettest.Evidence(t, h.Dir) {
		var b map[string]string
		json.Unmarshal(r.Body, &b)
		if r.Kind == evidence.KindUserAction && (b["action"] == "put_policy" || b["action"] == "set_group") {
			actions = append(actions, r.Actor+":"+b["action"]+":"+b["group"]+b["to"])
		}
		if b["event"] == "request_refused" && b["reason"] == "invalid policy" && b["principal"] == "admin" {
			refusedPolicy = true
		}
	}
	if got := strings.Join(actions, " "); got != "admin:put_policy:web admin:set_group:db" {
		t.Errorf("admin actions in evidence: %q", got)
	}
	if !refusedPolicy {
		t.Errorf("no evidence of the refused policy upload")
	}
}

func TestRevocation(t *testing.T) {
	h, admin, st, c, dir := enrolledIn(t, hub.Options{})
	url := h.URL() + "/api/v1/agent/records"
	if status, body := doPost(t, c, url, batch(1, 5)); status != 200 {
		t.Fatalf("ingest: %d %s", status, body)
	}
	operator := newUser(t, h, admin, "op", fleet.RoleOperator)
	users := fleettest.Client(h.CA().Pool(), nil)
	if status, _ := fleettest.Do(t, users, "POST", h.URL()+"/api/v1/hosts/"+st.AgentID+"/revoke", operator, nil); status != 403 {
		t.Fatalf("operator revoked: %d", status)
	}
	status, body := fleettest.Do(t, users, "POST", h.URL()+"/api/v1/hosts/"+st.AgentID+"/revoke", admin, nil)
	var ag fleet.Agent
	json.Unmarshal(body, &ag)
	if status != 200 || ag.Revoked.IsZero() {
		t.Fatalf("revoke: %d %s", status, body)
	}
	// The same client reuses its open TLS connection: the refusal does not
	// depend on a new handshake.
	for _, ep := range []struct{ method, path string }{
		{"POST", "/api/v1/agent/records"}, {"POST", "/api/v1/agent/heartbeat"}, {"GET", "/api/v1/agent/policy"}, {"POST", "/api/v1/agent/renew"},
	} {
		var req any
		if ep.method == "POST" {
			req = []byte(`{}`)
		}
		if ep.path == "/api/v1/agent/records" {
			req = batch(6, 6)
		}
		status, body := fleettest.Do(t, c, ep.method, h.URL()+ep.path, "", req)
		if e := errCode(t, body); status != 403 || e.Code != "revoked" {
			t.Errorf("%s %s after revocation: %d %+v", ep.method, ep.path, status, e)
		}
	}
	// Revocation survives a restart of the hub.
	h.Stop(t)
	h = fleettest.StartHub(t, h.Dir, "", hub.Options{})
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	c2 := fleettest.Client(h.CA().Pool(), &cert)
	status, body = doPost(t, c2, h.URL()+"/api/v1/agent/records", batch(6, 6))
	if e := errCode(t, body); status != 403 || e.Code != "revoked" {
		t.Fatalf("after restart: %d %+v", status, e)
	}
	// Only a new token brings the host back, as a new agent.
	st2, err := agent.Enroll(t.Context(), t.TempDir(), h.URL(), fleettest.EnrollToken(t, h, admin), "web1")
	if err != nil || st2.AgentID == st.AgentID {
		t.Fatalf("re-enrol: %+v, %v", st2, err)
	}
	h.Stop(t)
	var revoked, refused int
	for _, r := range fleettest.Evidence(t, h.Dir) {
		var b map[string]string
		json.Unmarshal(r.Body, &b)
		if b["action"] == "revoke" && b["agent"] == st.AgentID && r.Actor == "admin" {
			revoked++
		}
		if b["event"] == "request_refused" && b["reason"] == "agent revoked" && b["principal"] == st.AgentID {
			refused++
		}
	}
	if revoked != 1 || refused != 5 {
		t.Fatalf("evidence: %d revocations, %d refusals of the revoked agent; want 1 and 5", revoked, refused)
	}
}

// fromAddr is a client that connects from another loopback address, a
// distinct source for the hub's limiter.
func fromAddr(h *fleettest.Hub, ip string) *http.Client {
	c := fleettest.Client(h.CA().Pool(), nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c.Transport.(*http.Transport).DialContext = d.DialContext
	return c
}

func TestRefusalThrottling(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	h, _, _, c := enrolled(t, hub.Options{Now: clock, RefusalBurst: 3, RefusalEvery: time.Hour})
	attacker := fromAddr(h, "127.0.0.2")
	hosts := h.URL() + "/api/v1/hosts"
	try := func() (int, string) {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", hosts, nil)
		req.Header.Set("Authorization", "Bearer wrong")
		resp, err := attacker.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := range 3 {
		if status, _ := try(); status != 401 {
			t.Fatalf("refusal %d: %d, want 401", i, status)
		}
	}
	for range 5 {
		status, retry := try()
		if status != 429 || retry != "3600" {
			t.Fatalf("past the burst: %d Retry-After %q, want 429 3600", status, retry)
		}
	}
	// Another source is not affected.
	if status, body := doPost(t, c, h.URL()+"/api/v1/agent/records", batch(1, 1)); status != 200 {
		t.Fatalf("agent beside the throttled source: %d %s", status, body)
	}
	// A refusal is earned back after RefusalEvery.
	now.Add(int64(time.Hour))
	if status, _ := try(); status != 401 {
		t.Fatalf("after an hour: %d, want 401", status)
	}
	h.Stop(t)
	individual, summaries := 0, 0
	for _, r := range fleettest.Evidence(t, h.Dir) {
		var b struct {
			Event     string         `json:"event"`
			Remote    string         `json:"remote"`
			Source    string         `json:"source"`
			Throttled int            `json:"throttled"`
			Refused   map[string]int `json:"refused"`
		}
		json.Unmarshal(r.Body, &b)
		switch {
		case b.Event == "request_refused" && strings.HasPrefix(b.Remote, "127.0.0.2:"):
			individual++
		case b.Event == "refusals_throttled":
			summaries++
			if b.Source != "ip:127.0.0.2" || b.Throttled != 5 {
				t.Errorf("summary %+v, want 5 throttled requests of ip:127.0.0.2", b)
			}
		}
	}
	if individual != 4 || summaries != 1 {
		t.Fatalf("evidence holds %d individual refusals and %d summaries of the attacker; want 4 and 1", individual, summaries)
	}
}
