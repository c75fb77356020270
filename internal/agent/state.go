package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigilfim/vigil/internal/atomicfile"
	"github.com/vigilfim/vigil/internal/fleetca"
	"github.com/vigilfim/vigil/internal/hub"
)

// Files in the agent's state directory.
const (
	stateFile  = "agent.json"
	keyFile    = "agent.key"
	certFile   = "agent.crt"
	caFile     = "ca.crt"
	spoolFile  = "spool.sqlite"
	StatusFile = "status.json" // read by `vigil status`
	policyFile = "policy.note"
)

// ErrNotEnrolled: the state directory holds no enrolment.
var ErrNotEnrolled = errors.New("agent not enrolled")

// State is what enrolment leaves in the state directory.
type State struct {
	AgentID   string `json:"agent_id"`
	Server    string `json:"server"`
	Group     string `json:"group"`
	PolicyKey string `json:"policy_key"`
	Host      string `json:"host"`
}

// LoadState reads the enrolment state from dir.
func LoadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, ErrNotEnrolled
	}
	if err != nil {
		return s, fmt.Errorf("read agent state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read agent state: %w", err)
	}
	return s, nil
}

// Enroll enrols this host with the hub at server using a one-time token:
// it generates the agent key locally, sends a CSR, and stores the issued
// certificate, the hub CA and the hub's policy key in dir. The hub is
// trusted only if its certificate chains to the CA the token names.
func Enroll(ctx context.Context, dir, server, token, host string) (State, error) {
	if _, err := LoadState(dir); err == nil {
		return State{}, fmt.Errorf("enroll: %s already holds an enrolment", dir)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0]+"." != hub.TokenPrefix || len(parts[2]) != 64 {
		return State{}, errors.New("enroll: malformed token (want vgl1.<secret>.<ca-fingerprint>)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return State{}, fmt.Errorf("enroll: %w", err)
	}
	keyPEM, csrPEM, err := fleetca.NewKeyAndCSR(host)
	if err != nil {
		return State{}, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pinnedTLS(parts[2])}}
	body, _ := json.Marshal(hub.EnrollRequest{Token: token, Host: host, CSR: string(csrPEM)})
	var resp hub.EnrollResponse
	if err := call(ctx, client, http.MethodPost, server+"/api/v1/enroll", body, &resp); err != nil {
		return State{}, fmt.Errorf("enroll: %w", err)
	}
	ca, err := fleetca.ParsePEMCert([]byte(resp.CA))
	if err != nil || fleetca.Fingerprint(ca) != parts[2] {
		return State{}, errors.New("enroll: hub sent a CA that does not match the token")
	}
	st := State{AgentID: resp.AgentID, Server: server, Group: resp.Group, PolicyKey: resp.PolicyKey, Host: host}
	sb, _ := json.MarshalIndent(st, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{{keyFile, keyPEM, 0o600}, {certFile, []byte(resp.Certificate), 0o644}, {caFile, []byte(resp.CA), 0o644}, {stateFile, sb, 0o600}} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return State{}, fmt.Errorf("enroll: %w", err)
		}
	}
	return st, nil
}

// pinnedTLS trusts a server whose chain includes the CA with the given
// fingerprint, and nothing else: before enrolment the agent has no CA file.
func pinnedTLS(fingerprint string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			for _, c := range cs.PeerCertificates {
				if fleetca.Fingerprint(c) != fingerprint {
					continue
				}
				pool := x509.NewCertPool()
				pool.AddCert(c)
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: cs.ServerName})
				return err
			}
			return errors.New("hub certificate not issued by the CA named in the token")
		},
	}
}

// identity is the agent's current client certificate, swapped atomically
// on rotation.
type identity struct {
	cert atomic.Pointer[tls.Certificate]
	leaf atomic.Pointer[x509.Certificate]
}

func loadIdentity(dir string) (*identity, *x509.CertPool, error) {
	id := &identity{}
	if err := id.load(dir); err != nil {
		return nil, nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read hub ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, errors.New("read hub ca: no certificate")
	}
	return id, pool, nil
}

func (id *identity) load(dir string) error {
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return fmt.Errorf("load agent certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return fmt.Errorf("load agent certificate: %w", err)
	}
	id.cert.Store(&c)
	id.leaf.Store(leaf)
	return nil
}

// mtlsClient is an HTTP client presenting the agent certificate and
// trusting only the hub CA.
func mtlsClient(id *identity, pool *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{
				MinVersion: tls.VersionTLS13,
				RootCAs:    pool,
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					return id.cert.Load(), nil
				},
			},
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// APIError is a refusal from the hub: its status and error body.
type APIError struct {
	Status int
	Body   hub.ErrorBody
}

func (e *APIError) Error() string {
	return fmt.Sprintf("hub refused (%d %s): %s", e.Status, e.Body.Code, e.Body.Error)
}

// call sends a JSON request and decodes a JSON answer into out. A non-2xx
// answer is an *APIError.
func call(ctx context.Context, c *http.Client, method, u string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("%s %s: %w", method, req.URL.Path, ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, hub.MaxBody))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, &ae.Body) != nil {
			ae.Body.Error = http.StatusText(resp.StatusCode)
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if p, ok := out.(*[]byte); ok {
		*p = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, req.URL.Path, err)
	}
	return nil
}
