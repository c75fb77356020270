// Package agent is Vigil's fleet agent (`vigil agent`): it enrols with a
// hub using a one-time token, then talks to it over mutual TLS with a
// certificate the hub's CA issued for a key generated here, rotating it
// before it expires. It pulls the signed policy for its host group, runs the
// watcher, and streams every change record and health event to the hub
// through a durable SQLite spool, so that nothing is lost while the hub or
// the network is down and everything arrives in order when it returns.
//
// Delivery is at-least-once from the spool, made exactly-once by the hub:
// every record carries the agent's next sequence number, and the hub keeps
// the highest one it stored (the high-water mark) in the same transaction
// as the records, so a retried batch is recognised and not stored twice.
package agent

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/errgroup"

	"github.com/vigilfim/vigil/internal/atomicfile"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleetca"
	"github.com/vigilfim/vigil/internal/hub"
)

// Defaults, each with its reason.
const (
	// DefaultBatch records per request: large enough that a backlog of
	// 100,000 drains in a few hundred requests, small enough to stay far
	// under the hub's body limit with full who-data.
	DefaultBatch = 500
	// DefaultMinBackoff and DefaultMaxBackoff bound the exponential
	// backoff with full jitter: the cap keeps a returning hub from waiting
	// long for its agents, the jitter keeps a thousand agents from
	// reconnecting in step.
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 60 * time.Second
	// DefaultLinger is how long the sender waits after the first record
	// arrives in an empty spool before sending, so that a burst goes in one
	// request: per-request cost (TLS record, handler, group commit slot)
	// dominates the hub's work with a thousand agents, and a second of
	// delay is nothing next to a change record's life.
	DefaultLinger = time.Second
)

// Config configures an agent run.
type Config struct {
	// Dir is the state directory Enroll filled.
	Dir string
	// Version is reported in heartbeats.
	Version string
	// Watch runs the watcher, sending its output to sink, until ctx ends.
	// The CLI wires monitor.Run here; nil runs only the sender.
	Watch func(ctx context.Context, policyYAML []byte, sink *Sink) error
	// Batch, MinBackoff, MaxBackoff, Linger: zero means the defaults; a
	// negative Linger sends at once.
	Batch                  int
	MinBackoff, MaxBackoff time.Duration
	Linger                 time.Duration
	// Heartbeat is the interval until the hub says otherwise; 30 s if 0.
	Heartbeat time.Duration
	// Log receives operational messages; discarded if nil.
	Log *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Agent is an enrolled agent.
type Agent struct {
	cfg    Config
	state  State
	spool  *Spool
	id     *identity
	client *http.Client
	log    *slog.Logger

	mu     sync.Mutex
	status Status

	// reload asks the watch loop to fetch the policy again: the hub
	// announced another version for the agent's group.
	reload chan struct{}
}

// Status is the agent's state as `vigil status` shows it (status.json).
type Status struct {
	AgentID        string    `json:"agent_id"`
	Server         string    `json:"server"`
	State          string    `json:"state"` // starting, running, stopped
	HubConnected   bool      `json:"hub_connected"`
	LastContact    time.Time `json:"last_contact,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	SpoolDepth     int64     `json:"spool_depth"`
	Delivered      uint64    `json:"delivered"` // hub's high-water mark
	PolicyVersion  string    `json:"policy_version,omitempty"`
	WatcherBackend string    `json:"watcher_backend,omitempty"`
	WatcherHealth  string    `json:"watcher_health,omitempty"`
	CertExpires    time.Time `json:"cert_expires,omitzero"`
	Updated        time.Time `json:"updated"`
}

// Open loads an enrolled agent from cfg.Dir and opens its spool.
func Open(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = hub.DefaultHeartbeat
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lg := cfg.Log
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	st, err := LoadState(cfg.Dir)
	if err != nil {
		return nil, err
	}
	id, pool, err := loadIdentity(cfg.Dir)
	if err != nil {
		return nil, err
	}
	sp, err := OpenSpool(ctx, filepath.Join(cfg.Dir, spoolFile))
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, state: st, spool: sp, id: id, client: mtlsClient(id, pool), log: lg, reload: make(chan struct{}, 1)}
	a.status = Status{AgentID: st.AgentID, Server: st.Server, State: "starting", CertExpires: id.leaf.Load().NotAfter}
	return a, nil
}

// Spool returns the agent's spool.
func (a *Agent) Spool() *Spool { return a.spool }

// Close closes the spool.
func (a *Agent) Close() error { return a.spool.Close() }

// Run runs the sender, the heartbeat, certificate renewal and the watcher
// until ctx ends. The watcher starts once a verified policy is at hand:
// fetched from the hub, or the last verified copy when the hub is away;
// with neither (a hub down since enrolment) it retries with backoff while
// the rest runs.
func (a *Agent) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.sendLoop(gctx) })
	g.Go(func() error { return a.heartbeatLoop(gctx) })
	g.Go(func() error { return a.renewLoop(gctx) })
	g.Go(func() error { return a.watchLoop(gctx) })
	a.setStatus(func(s *Status) { s.State = "running" })
	err := g.Wait()
	a.setStatus(func(s *Status) { s.State = "stopped" })
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// errWatcherEnded: the watcher returned without an error before the agent
// stopped.
var errWatcherEnded = errors.New("watcher ended")

// watchLoop runs the watcher on the verified policy, and again on the new
// one whenever the hub announces another version for the agent's group
// (heartbeatLoop): the policy is applied without restarting the agent.
// It starts once a verified policy is at hand: fetched from the hub, or
// the last verified copy when the hub is away; with neither (a hub down
// since enrolment) it retries with backoff while the rest runs.
func (a *Agent) watchLoop(ctx context.Context) error {
	var pol []byte
	var version string
	for fails := 1; ; fails++ {
		var err error
		if pol, version, _, err = a.policy(ctx, true); err == nil {
			break
		}
		a.log.Warn("no policy yet", "err", err)
		a.setStatus(func(s *Status) { s.LastError = err.Error() })
		if sleep(ctx, a.backoff(fails)) != nil {
			return nil
		}
	}
	for {
		wctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			if a.cfg.Watch == nil {
				<-wctx.Done()
				done <- nil
				return
			}
			done <- a.cfg.Watch(wctx, pol, &Sink{a: a})
		}()
		next, nextVersion, group, werr := a.awaitPolicy(ctx, version, done)
		stop()
		if next == nil {
			// The watcher ended (werr says why) or ctx did.
			if werr == nil {
				werr = <-done
			}
			if werr != nil && ctx.Err() == nil && !errors.Is(werr, errWatcherEnded) {
				return fmt.Errorf("watch: %w", werr)
			}
			return nil
		}
		if werr := <-done; werr != nil && ctx.Err() == nil {
			a.log.Warn("watcher stopped for the policy change", "err", werr)
		}
		// The change of policy is itself a health event the hub records.
		if _, err := a.spool.Append(ctx, fleet.KindHealth, a.cfg.Now(), map[string]string{
			"event": "policy_applied", "from": version, "to": nextVersion, "group": group}); err != nil {
			return err
		}
		a.log.Info("applying new policy", "from", version, "to", nextVersion)
		pol, version = next, nextVersion
	}
}

// awaitPolicy waits for a new policy version, which it returns once
// fetched and verified with its version and group, or for the watcher to
// end (returning nil and its error, errWatcherEnded if it had none) or
// ctx to (nil and no error).
func (a *Agent) awaitPolicy(ctx context.Context, version string, done <-chan error) (pol []byte, v, group string, err error) {
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errWatcherEnded
			}
			return nil, "", "", err
		case <-ctx.Done():
			return nil, "", "", nil
		case <-a.reload:
			pol, v, group, err := a.policy(ctx, false)
			if err != nil {
				a.log.Warn("fetch new policy; keeping the current one", "err", err)
				continue
			}
			if v != version {
				return pol, v, group, nil
			}
		}
	}
}

// policy fetches and verifies the signed policy and returns it with its
// version and group; with fallback it uses the last verified copy when the
// hub is unreachable.
func (a *Agent) policy(ctx context.Context, fallback bool) ([]byte, string, string, error) {
	v, err := note.NewVerifier(a.state.PolicyKey)
	if err != nil {
		return nil, "", "", fmt.Errorf("load hub policy key: %w", err)
	}
	path := filepath.Join(a.cfg.Dir, policyFile)
	var signed []byte
	fetchErr := call(ctx, a.client, http.MethodGet, a.state.Server+"/api/v1/agent/policy", nil, &signed)
	if fetchErr != nil {
		if !fallback {
			return nil, "", "", fmt.Errorf("fetch policy: %w", fetchErr)
		}
		a.log.Warn("fetch policy; using the stored copy", "err", fetchErr)
		if signed, err = os.ReadFile(path); err != nil {
			return nil, "", "", fmt.Errorf("fetch policy: %w (and no stored copy: %v)", fetchErr, err)
		}
	}
	// Verify the signature before parsing what it signs.
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return nil, "", "", fmt.Errorf("verify policy: %w", err)
	}
	var doc hub.PolicyDocument
	if err := json.Unmarshal([]byte(strings.TrimSuffix(n.Text, "\n")), &doc); err != nil {
		return nil, "", "", fmt.Errorf("decode policy: %w", err)
	}
	if fetchErr == nil {
		if err := atomicfile.WriteFile(path, signed, 0o600); err != nil {
			return nil, "", "", err
		}
	}
	a.setStatus(func(s *Status) { s.PolicyVersion = doc.Version })
	return []byte(doc.Policy), doc.Version, doc.Group, nil
}

// sendLoop drains the spool to the hub in sequence order, one batch at a
// time: a batch is deleted only after the hub acknowledged it, so a crash
// of either side only ever causes a resend, which the hub skips.
func (a *Agent) sendLoop(ctx context.Context) error {
	fails := 0
	for {
		recs, err := a.spool.Peek(ctx, a.cfg.Batch)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			a.updateDepth(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-a.spool.Notify():
				if a.cfg.Linger > 0 && sleep(ctx, a.cfg.Linger) != nil {
					return nil
				}
				continue
			}
		}
		hw, err := a.send(ctx, recs)
		if err == nil {
			fails = 0
			// Only what was sent: after a spool restore the hub's mark can
			// be past records it has not seen (see Spool.Rebase).
			if err := a.spool.Ack(ctx, min(hw, recs[len(recs)-1].Seq)); err != nil {
				return err
			}
			a.setStatus(func(s *Status) {
				s.HubConnected, s.LastContact, s.Delivered, s.LastError = true, a.cfg.Now(), hw, ""
			})
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		fails++
		a.setStatus(func(s *Status) { s.HubConnected, s.LastError = false, err.Error() })
		a.updateDepth(ctx)
		a.log.Warn("deliver records", "err", err, "attempt", fails)
		if err := sleep(ctx, a.backoff(fails)); err != nil {
			return nil
		}
	}
}

// send posts one batch and returns the hub's high-water mark. A replayed
// batch is an acknowledgement too: the hub already has it.
func (a *Agent) send(ctx context.Context, recs []fleet.Record) (uint64, error) {
	body, err := json.Marshal(hub.IngestRequest{Records: recs})
	if err != nil {
		return 0, fmt.Errorf("encode batch: %w", err)
	}
	var resp hub.IngestResponse
	err = call(ctx, a.client, http.MethodPost, a.state.Server+"/api/v1/agent/records", body, &resp)
	var ae *APIError
	if errors.As(err, &ae) && ae.Body.Code == "replay" && ae.Body.HighWater != nil {
		return *ae.Body.HighWater, nil
	}
	if errors.As(err, &ae) && ae.Body.Code == "sequence_reused" && ae.Body.HighWater != nil && ae.Body.DivergedAt != nil {
		n, rerr := a.spool.Rebase(ctx, *ae.Body.DivergedAt, *ae.Body.HighWater, a.cfg.Now())
		if rerr != nil {
			return 0, rerr
		}
		a.log.Warn("spool reused sequence numbers (restored from a backup?); renumbered its new records",
			"diverged_at", *ae.Body.DivergedAt, "hub_high_water", *ae.Body.HighWater, "renumbered", n)
		return 0, err // retried after the backoff, renumbered
	}
	if err != nil {
		return 0, err
	}
	return resp.HighWater, nil
}

// backoff is exponential from MinBackoff, capped at MaxBackoff, with full
// jitter.
func (a *Agent) backoff(fails int) time.Duration {
	d := a.cfg.MinBackoff << min(fails-1, 20)
	if d > a.cfg.MaxBackoff || d <= 0 {
		d = a.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// heartbeatLoop reports the agent's status to the hub and writes the
// status file.
func (a *Agent) heartbeatLoop(ctx context.Context) error {
	interval := a.cfg.Heartbeat
	for {
		a.updateDepth(ctx)
		s := a.Status()
		hb := fleet.Status{Version: a.cfg.Version, PolicyVersion: s.PolicyVersion, BaselineState: "ok",
			WatcherBackend: s.WatcherBackend, WatcherHealth: s.WatcherHealth, SpoolDepth: s.SpoolDepth}
		body, _ := json.Marshal(hb)
		var resp hub.HeartbeatResponse
		if err := call(ctx, a.client, http.MethodPost, a.state.Server+"/api/v1/agent/heartbeat", body, &resp); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.setStatus(func(s *Status) { s.HubConnected, s.LastError = false, err.Error() })
			// A revoked agent stops: retrying could never succeed, and
			// only a new enrolment brings the host back.
			var ae *APIError
			if errors.As(err, &ae) && ae.Body.Code == "revoked" {
				return fmt.Errorf("%w: re-enrol this host with a new token (%v)", fleet.ErrRevoked, err)
			}
		} else {
			a.setStatus(func(s *Status) { s.HubConnected, s.LastContact = true, a.cfg.Now() })
			if resp.IntervalSeconds > 0 {
				interval = time.Duration(resp.IntervalSeconds) * time.Second
			}
			if resp.PolicyVersion != "" && resp.PolicyVersion != s.PolicyVersion {
				select {
				case a.reload <- struct{}{}:
				default:
				}
			}
		}
		if err := sleep(ctx, interval); err != nil {
			return nil
		}
	}
}

// renewLoop rotates the client certificate at fleetca.RenewAt, retrying
// with backoff while the hub is away.
func (a *Agent) renewLoop(ctx context.Context) error {
	fails := 0
	for {
		leaf := a.id.leaf.Load()
		if err := sleep(ctx, fleetca.RenewAt(leaf).Sub(a.cfg.Now())); err != nil {
			return nil
		}
		if err := a.Renew(ctx); err != nil {
			fails++
			a.log.Warn("renew certificate", "err", err)
			if err := sleep(ctx, a.backoff(fails)); err != nil {
				return nil
			}
			continue
		}
		fails = 0
	}
}

// Renew rotates the client certificate now: a new key and CSR, signed by
// the hub, written atomically (key first: a crash between leaves a new key
// with the old certificate, which the next start detects and renews from).
func (a *Agent) Renew(ctx context.Context) error {
	keyPEM, csrPEM, err := fleetca.NewKeyAndCSR(a.state.Host)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(hub.RenewRequest{CSR: string(csrPEM)})
	var resp hub.RenewResponse
	if err := call(ctx, a.client, http.MethodPost, a.state.Server+"/api/v1/agent/renew", body, &resp); err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	if _, err := fleetca.ParsePEMCert([]byte(resp.Certificate)); err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	// Write both under new names, then rename: the pair changes together.
	tmpKey, tmpCert := filepath.Join(a.cfg.Dir, keyFile+".new"), filepath.Join(a.cfg.Dir, certFile+".new")
	if err := atomicfile.WriteFile(tmpKey, keyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(tmpCert, []byte(resp.Certificate), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmpKey, filepath.Join(a.cfg.Dir, keyFile)); err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	if err := os.Rename(tmpCert, filepath.Join(a.cfg.Dir, certFile)); err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	if err := a.id.load(a.cfg.Dir); err != nil {
		return err
	}
	a.client.CloseIdleConnections() // new connections present the new certificate
	a.setStatus(func(s *Status) { s.CertExpires = a.id.leaf.Load().NotAfter })
	return nil
}

// Certificate returns the current client certificate.
func (a *Agent) Certificate() *x509.Certificate { return a.id.leaf.Load() }

// Status returns a copy of the agent's status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

func (a *Agent) updateDepth(ctx context.Context) {
	if n, err := a.spool.Depth(ctx); err == nil {
		a.setStatus(func(s *Status) { s.SpoolDepth = n })
	}
}

// setStatus changes the status and rewrites the status file. A failure to
// write it is logged: it is a view for `vigil status`, not state.
func (a *Agent) setStatus(fn func(*Status)) {
	a.mu.Lock()
	fn(&a.status)
	a.status.Updated = a.cfg.Now().UTC()
	b, _ := json.MarshalIndent(a.status, "", "  ")
	a.mu.Unlock()
	if err := atomicfile.WriteFile(filepath.Join(a.cfg.Dir, StatusFile), append(b, '\n'), 0o644); err != nil {
		a.log.Warn("write status file", "err", err)
	}
}

// ReadStatus reads the status file an agent running on dir writes.
func ReadStatus(dir string) (Status, error) {
	var s Status
	b, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if err != nil {
		return s, fmt.Errorf("read agent status: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read agent status: %w", err)
	}
	return s, nil
}
