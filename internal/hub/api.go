package hub

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleetca"
)

// TokenPrefix starts every enrolment token: vgl1.<secret>.<CA SHA-256>.
// The CA fingerprint lets a new agent trust this hub, and only it, on
// first contact.
const TokenPrefix = "vgl1."

// Route is one registered endpoint; docs/openapi.yaml must list exactly
// these (a test checks it).
type Route struct {
	Method, Path string
	handler      func(http.ResponseWriter, *http.Request) error
}

// auth levels.
type access int

const (
	public access = iota
	agentCert
	agentStream // agentCert, with a body bounded per frame instead of in total
	anyUser
	adminOnly
)

// Routes returns the API's endpoints.
func (h *Hub) Routes() []Route {
	r := func(method, path string, a access, fn func(http.ResponseWriter, *http.Request) error) Route {
		return Route{Method: method, Path: path, handler: h.guard(a, fn)}
	}
	return []Route{
		r("GET", "/api/v1/health", public, h.health),
		r("POST", "/api/v1/enroll", public, h.enroll),
		r("POST", "/api/v1/agent/records", agentCert, h.ingestRecords),
		r("POST", "/api/v1/agent/stream", agentStream, h.ingestStream),
		r("POST", "/api/v1/agent/heartbeat", agentCert, h.heartbeat),
		r("GET", "/api/v1/agent/policy", agentCert, h.servePolicy),
		r("POST", "/api/v1/agent/renew", agentCert, h.renew),
		r("POST", "/api/v1/enrollment-tokens", adminOnly, h.createEnrollToken),
		r("POST", "/api/v1/users", adminOnly, h.createUser),
		r("GET", "/api/v1/hosts", anyUser, h.listHosts),
		r("GET", "/api/v1/hosts/{id}", anyUser, h.getHost),
		r("PUT", "/api/v1/hosts/{id}/group", adminOnly, h.setGroup),
		r("POST", "/api/v1/hosts/{id}/revoke", adminOnly, h.revoke),
		r("GET", "/api/v1/groups/{group}/policy", anyUser, h.getPolicy),
		r("PUT", "/api/v1/groups/{group}/policy", adminOnly, h.putPolicy),
	}
}

// Handler returns the API's HTTP handler.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range h.Routes() {
		fn := rt.handler
		mux.HandleFunc(rt.Method+" "+rt.Path, func(w http.ResponseWriter, r *http.Request) {
			err := h.throttled(sourceKey(r))
			if err == nil {
				err = fn(w, r)
			}
			if err != nil {
				status, internal := writeError(w, err)
				if internal {
					h.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
				}
			}
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fleet.ErrNotFound)
	})
	return mux
}

type ctxKey int

const (
	keyAgent ctxKey = iota
	keyUser
)

// guard authenticates a request per its access level and bounds its body.
func (h *Hub) guard(a access, fn func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if a == agentStream {
			// Answer while the agent is still sending: without full
			// duplex, net/http reads the request body to its end before
			// writing a refusal, and a stream's body has no end.
			// HTTP/2 is always full duplex (ErrNotSupported).
			if err := http.NewResponseController(w).EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return fmt.Errorf("open record stream: %w", err)
			}
		} else {
			if r.ContentLength > MaxBody {
				h.refuse(r.Context(), r, "", errTooLarge)
				return errTooLarge
			}
			r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		}
		switch a {
		case agentCert, agentStream:
			var chain []*x509Cert
			if r.TLS != nil {
				chain = r.TLS.PeerCertificates
			}
			id, _, err := h.ca.VerifyClient(chain)
			if err == nil {
				var ag fleet.Agent
				ag, err = h.store.Agent(r.Context(), id)
				if errors.Is(err, fleet.ErrNotFound) {
					err = fleetca.ErrForeign
				}
				// Checked on every request, from the database: a revoked
				// agent is refused on its open connections too, and by
				// every hub sharing the database.
				if err == nil && !ag.Revoked.IsZero() {
					err = fleet.ErrRevoked
				}
				if err == nil {
					r = r.WithContext(context.WithValue(r.Context(), keyAgent, ag))
				}
			}
			if err != nil {
				h.refuse(r.Context(), r, id, err)
				return err
			}
			// The agent's own bucket: its refusals (replays, malformed
			// batches) are charged to it rather than to its address.
			if err := h.throttled(sourceKey(r)); err != nil {
				return err
			}
		case anyUser, adminOnly:
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok {
				h.refuse(r.Context(), r, "", errUnauthorized)
				return errUnauthorized
			}
			u, err := h.store.UserByToken(r.Context(), hashToken(tok))
			if err != nil {
				if errors.Is(err, fleet.ErrTokenInvalid) {
					h.refuse(r.Context(), r, "", err)
				}
				return err
			}
			if a == adminOnly && u.Role != fleet.RoleAdmin {
				h.refuse(r.Context(), r, u.Name, errForbidden)
				return errForbidden
			}
			r = r.WithContext(context.WithValue(r.Context(), keyUser, u))
		}
		return fn(w, r)
	}
}

// refuse records a refused request in the evidence log: failed
// authentication and malformed input are security events. A failure to
// record is logged; the request is refused either way. Past the source's
// refusal budget (ratelimit.go) the refusal is only counted, and a summary
// record per source replaces the individual ones.
func (h *Hub) refuse(ctx context.Context, r *http.Request, who string, reason error) {
	if !h.limit.fail(sourceKey(r), reason.Error()) {
		return
	}
	body := map[string]string{"event": "request_refused", "method": r.Method, "path": r.URL.Path,
		"remote": r.RemoteAddr, "reason": reason.Error()}
	if who != "" {
		body["principal"] = who
	}
	if err := h.record(context.WithoutCancel(ctx), evidence.KindHealth, "vigil/hub", body); err != nil {
		h.logger.Error("record refusal", "err", err)
	}
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return badRequest("read body")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(fmt.Sprintf("decode JSON: %v", err))
	}
	if dec.More() {
		return badRequest("trailing data after JSON")
	}
	return nil
}

func (h *Hub) health(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// EnrollRequest is the body of POST /api/v1/enroll.
type EnrollRequest struct {
	Token string `json:"token"`
	Host  string `json:"host"`
	CSR   string `json:"csr"`
}

// EnrollResponse answers an enrolment.
type EnrollResponse struct {
	AgentID     string `json:"agent_id"`
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
	PolicyKey   string `json:"policy_key"`
	Group       string `json:"group"`
}

func (h *Hub) enroll(w http.ResponseWriter, r *http.Request) error {
	var req EnrollRequest
	if err := decode(r, &req); err != nil {
		h.refuse(r.Context(), r, "", err)
		return err
	}
	secret, ok := parseToken(req.Token)
	if !ok || req.Host == "" || len(req.Host) > evidence.MaxHostLen {
		err := badRequest("token and host are required")
		if !ok {
			err = fleet.ErrTokenInvalid
		}
		h.refuse(r.Context(), r, req.Host, err)
		return err
	}
	id := newID()
	cert, err := h.ca.SignCSR([]byte(req.CSR), id)
	if err != nil {
		h.refuse(r.Context(), r, req.Host, err)
		return err
	}
	serial := cert.SerialNumber.Text(16)
	ag, err := h.store.Enroll(r.Context(), hashToken(secret), h.opts.Now(), fleet.Agent{ID: id, Host: req.Host, CertSerial: serial})
	if err != nil {
		if errors.Is(err, fleet.ErrTokenInvalid) {
			h.refuse(r.Context(), r, req.Host, err)
		}
		return err
	}
	if err := h.recordHost(r.Context(), evidence.KindUserAction, ag.Host, map[string]string{
		"action": "enroll", "agent": id, "group": ag.Group, "cert_serial": serial}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, EnrollResponse{AgentID: id, Certificate: string(fleetca.PEMCert(cert)),
		CA: string(h.ca.PEM()), PolicyKey: h.key.VerifierKey(), Group: ag.Group})
	return nil
}

// parseToken checks the token's shape and returns its secret part.
func parseToken(tok string) (string, bool) {
	rest, ok := strings.CutPrefix(tok, TokenPrefix)
	if !ok {
		return "", false
	}
	secret, fp, ok := strings.Cut(rest, ".")
	return secret, ok && secret != "" && len(fp) == 64
}

// IngestRequest is the body of POST /api/v1/agent/records.
type IngestRequest struct {
	Records []fleet.Record `json:"records"`
}

// IngestResponse acknowledges every record up to HighWater.
type IngestResponse struct {
	HighWater uint64 `json:"high_water"`
}

func (h *Hub) ingestRecords(w http.ResponseWriter, r *http.Request) error {
	ag := r.Context().Value(keyAgent).(fleet.Agent)
	var req IngestRequest
	err := decode(r, &req)
	if err == nil {
		err = validateBatch(req.Records)
	}
	if err == nil {
		err = h.checkReuse(r.Context(), ag, req.Records)
	}
	if err != nil {
		if _, client := classify(err); client {
			h.refuse(r.Context(), r, ag.ID, err)
		}
		return err
	}
	res := h.submit(r.Context(), fleet.Batch{AgentID: ag.ID, Records: req.Records})
	if res.Err != nil {
		if errors.Is(res.Err, fleet.ErrReplay) || errors.Is(res.Err, fleet.ErrSequenceGap) {
			h.refuse(r.Context(), r, ag.ID, res.Err)
			return &hwError{err: res.Err, hw: res.HighWater}
		}
		return res.Err
	}
	writeJSON(w, http.StatusOK, IngestResponse{HighWater: res.HighWater})
	return nil
}

// validateBatch checks a batch before anything of it is stored, so a bad
// record refuses the whole batch.
func validateBatch(recs []fleet.Record) error {
	if len(recs) == 0 {
		return badRequest("no records")
	}
	if len(recs) > MaxBatch {
		return &detailError{errTooLarge, fmt.Sprintf("more than %d records", MaxBatch)}
	}
	for i := range recs {
		if i > 0 && recs[i].Seq != recs[i-1].Seq+1 {
			return badRequest(fmt.Sprintf("record %d: sequence numbers must ascend by one", i))
		}
		if err := validateRecord(i, &recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// validateRecord checks one record of a batch or stream (i names it in
// the error) and compacts its body, which the evidence log embeds as is.
func validateRecord(i int, rec *fleet.Record) error {
	if rec.Seq == 0 {
		return badRequest(fmt.Sprintf("record %d: sequence numbers start at 1", i))
	}
	if rec.Kind != fleet.KindChange && rec.Kind != fleet.KindHealth {
		return badRequest(fmt.Sprintf("record %d: unknown kind", i))
	}
	if rec.Time.IsZero() {
		return badRequest(fmt.Sprintf("record %d: no time", i))
	}
	if len(rec.Body) == 0 || rec.Body[0] != '{' {
		return badRequest(fmt.Sprintf("record %d: body must be a JSON object", i))
	}
	// Agents send compact JSON: checking that is half the cost of
	// compacting (measured on a 600-byte change record) and copies nothing.
	if !json.Valid(rec.Body) {
		return badRequest(fmt.Sprintf("record %d: body must be a JSON object", i))
	}
	if !compact(rec.Body) {
		var buf bytes.Buffer
		buf.Grow(len(rec.Body))
		json.Compact(&buf, rec.Body)
		rec.Body = buf.Bytes()
	}
	if len(rec.Body) > evidence.MaxBodyLen/2 {
		return &detailError{errTooLarge, fmt.Sprintf("record %d: body too large", i)}
	}
	return nil
}

// compact reports whether the valid JSON b has no whitespace outside
// strings, that is whether json.Compact would leave it as it is.
func compact(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

func (h *Hub) heartbeat(w http.ResponseWriter, r *http.Request) error {
	ag := r.Context().Value(keyAgent).(fleet.Agent)
	var st fleet.Status
	if err := decode(r, &st); err != nil {
		h.refuse(r.Context(), r, ag.ID, err)
		return err
	}
	wasSilent, err := h.store.Heartbeat(r.Context(), ag.ID, h.opts.Now(), st)
	if err != nil {
		return err
	}
	if wasSilent {
		if err := h.recordHost(r.Context(), evidence.KindHealth, ag.Host, map[string]string{
			"event": "agent_returned", "agent": ag.ID, "silent_since": ag.LastSeen.Format(time.RFC3339Nano)}); err != nil {
			return err
		}
	}
	version, err := h.groupPolicyVersion(r.Context(), ag.Group)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, HeartbeatResponse{IntervalSeconds: int(h.opts.Heartbeat / time.Second), PolicyVersion: version})
	return nil
}

// HeartbeatResponse tells the agent how often to report and which policy
// version its group has: an agent running another one fetches the policy
// again and applies it.
type HeartbeatResponse struct {
	IntervalSeconds int    `json:"interval_seconds"`
	PolicyVersion   string `json:"policy_version,omitempty"`
}

// PolicyDocument is the signed text an agent receives: the note's text is
// this JSON, signed with the hub key.
type PolicyDocument struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Policy  string `json:"policy"`
}

func (h *Hub) servePolicy(w http.ResponseWriter, r *http.Request) error {
	ag := r.Context().Value(keyAgent).(fleet.Agent)
	signed, _, err := h.groupPolicy(r.Context(), ag.Group)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(signed)
	return nil
}

// RenewRequest carries a new CSR for certificate rotation.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// RenewResponse carries the new certificate.
type RenewResponse struct {
	Certificate string `json:"certificate"`
}

func (h *Hub) renew(w http.ResponseWriter, r *http.Request) error {
	ag := r.Context().Value(keyAgent).(fleet.Agent)
	var req RenewRequest
	if err := decode(r, &req); err != nil {
		h.refuse(r.Context(), r, ag.ID, err)
		return err
	}
	cert, err := h.ca.SignCSR([]byte(req.CSR), ag.ID)
	if err != nil {
		h.refuse(r.Context(), r, ag.ID, err)
		return err
	}
	serial := cert.SerialNumber.Text(16)
	if err := h.store.SetCertSerial(r.Context(), ag.ID, serial); err != nil {
		return err
	}
	if err := h.recordHost(r.Context(), evidence.KindUserAction, ag.Host, map[string]string{
		"action": "renew_certificate", "agent": ag.ID, "cert_serial": serial}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RenewResponse{Certificate: string(fleetca.PEMCert(cert))})
	return nil
}

// EnrollTokenRequest is the body of POST /api/v1/enrollment-tokens.
type EnrollTokenRequest struct {
	Group      string `json:"group"`
	TTLSeconds int    `json:"ttl_seconds"`
}

// EnrollTokenResponse returns the token, shown once.
type EnrollTokenResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// DefaultTokenTTL is how long an enrolment token lasts unless asked: a day
// covers a provisioning run without leaving tokens lying around.
const DefaultTokenTTL = 24 * time.Hour

func (h *Hub) createEnrollToken(w http.ResponseWriter, r *http.Request) error {
	u := r.Context().Value(keyUser).(fleet.User)
	var req EnrollTokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Group == "" {
		req.Group = fleet.DefaultGroup
	}
	if !fleet.ValidGroup(req.Group) {
		return badRequest("group names are 1-64 characters of a-z, 0-9, '.', '_', '-'")
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if req.TTLSeconds < 0 || ttl > 30*24*time.Hour {
		return badRequest("ttl_seconds must be between 0 and 30 days")
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	secret := newSecret()
	exp := h.opts.Now().Add(ttl).UTC()
	if err := h.store.CreateEnrollToken(r.Context(), fleet.EnrollToken{Hash: hashToken(secret), Group: req.Group, Expires: exp, Creator: u.Name}); err != nil {
		return err
	}
	if err := h.record(r.Context(), evidence.KindUserAction, u.Name, map[string]string{
		"action": "create_enrollment_token", "group": req.Group, "expires": exp.Format(time.RFC3339)}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, EnrollTokenResponse{Token: TokenPrefix + secret + "." + h.ca.Fingerprint(), Expires: exp})
	return nil
}

// UserRequest is the body of POST /api/v1/users.
type UserRequest struct {
	Name string     `json:"name"`
	Role fleet.Role `json:"role"`
}

// UserResponse returns the new user's API token, shown once.
type UserResponse struct {
	Name  string     `json:"name"`
	Role  fleet.Role `json:"role"`
	Token string     `json:"token"`
}

func (h *Hub) createUser(w http.ResponseWriter, r *http.Request) error {
	u := r.Context().Value(keyUser).(fleet.User)
	var req UserRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Name == "" || len(req.Name) > 64 || !req.Role.Valid() {
		return badRequest("name (1-64 characters) and a role (admin, approver, operator, auditor) are required")
	}
	tok := newSecret()
	if err := h.store.CreateUser(r.Context(), fleet.User{Name: req.Name, Role: req.Role}, hashToken(tok)); err != nil {
		return err
	}
	if err := h.record(r.Context(), evidence.KindUserAction, u.Name, map[string]string{
		"action": "create_user", "user": req.Name, "role": string(req.Role)}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, UserResponse{Name: req.Name, Role: req.Role, Token: tok})
	return nil
}

func (h *Hub) listHosts(w http.ResponseWriter, r *http.Request) error {
	as, err := h.store.Agents(r.Context())
	if err != nil {
		return err
	}
	if as == nil {
		as = []fleet.Agent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"hosts": as})
	return nil
}

func (h *Hub) getHost(w http.ResponseWriter, r *http.Request) error {
	a, err := h.store.Agent(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
