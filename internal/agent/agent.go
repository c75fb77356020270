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
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
	// DefaultWindow bounds the records written to a stream and not yet
	// acknowledged: a few batches keep the stream full while the hub
	// commits, and at most this many are resent after a broken stream.
	DefaultWindow = 4 * DefaultBatch
)

// Stream timing, each with its reason.
const (
	// streamIdle closes a stream that carried nothing for a minute, below
	// the hub's own idle limit so that the agent, not the hub, ends it.
	streamIdle = time.Minute
	// ackTimeout: records in flight and no ack for this long means the
	// hub or the path to it is gone without a reset; resend on a new
	// stream.
	ackTimeout = 60 * time.Second
	// spoolDeleteEvery paces deleting acknowledged records from the spool.
	spoolDeleteEvery = time.Second
	// statusEvery paces status-file rewrites on the delivery path.
	statusEvery = time.Second
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
	// Batch (records per spool read and write to the stream), Window,
	// MinBackoff, MaxBackoff: zero means the defaults.
	Batch, Window          int
	MinBackoff, MaxBackoff time.Duration
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
	// streamClient shares client's transport without its timeout: a
	// record stream lives for minutes.
	streamClient *http.Client
	log          *slog.Logger

	mu            sync.Mutex
	status        Status
	statusWritten time.Time

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
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	cfg.Window = max(cfg.Window, cfg.Batch)
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
	client := mtlsClient(id, pool)
	a := &Agent{cfg: cfg, state: st, spool: sp, id: id, client: client,
		streamClient: &http.Client{Transport: client.Transport}, log: lg, reload: make(chan struct{}, 1)}
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

// sendLoop drains the spool to the hub over record streams: it opens a
// stream when the spool holds records and keeps it while records flow.
// Records are deleted only after the hub acknowledged them, so a crash of
// either side only ever causes a resend, which the hub skips.
func (a *Agent) sendLoop(ctx context.Context) error {
	fails := 0
	for {
		recs, err := a.spool.PeekAfter(ctx, 0, 1)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			a.updateDepth(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-a.spool.Notify():
				continue
			}
		}
		err = a.stream(ctx)
		var fe fatalError
		if errors.As(err, &fe) {
			return fe.err
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Body.Code == "sequence_reused" && ae.Body.HighWater != nil && ae.Body.DivergedAt != nil {
			n, rerr := a.spool.Rebase(ctx, *ae.Body.DivergedAt, *ae.Body.HighWater, a.cfg.Now())
			if rerr != nil {
				return rerr
			}
			a.log.Warn("spool reused sequence numbers (restored from a backup?); renumbered its new records",
				"diverged_at", *ae.Body.DivergedAt, "hub_high_water", *ae.Body.HighWater, "renumbered", n)
			// retried after the backoff, renumbered
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			fails = 0
			continue
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

// fatalError is a failure of the agent itself (its spool), which ends the
// run, as opposed to a delivery failure, which is retried.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }

// stream runs one record stream: it writes spooled records in sequence
// order as they come, at most a window ahead of the hub's acks, and
// deletes what the hub acknowledged. It returns nil when the stream ended
// cleanly (idle, or the hub ended it with nothing in flight).
func (a *Agent) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := OpenStream(ctx, a.streamClient, a.state.Server)
	if err != nil {
		return err
	}
	defer st.Close()
	var acked atomic.Uint64
	kick := make(chan struct{}, 1)
	recvErr := make(chan error, 1)
	go func() {
		for {
			hw, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			acked.Store(hw)
			a.delivered(hw)
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}()
	// Deleting acknowledged records is for space only (a record resent
	// after a crash is skipped by the hub), so it need not follow every
	// ack: each delete is a durable spool transaction. It runs after a
	// batch's worth of acks or spoolDeleteEvery after the first pending.
	var sent uint64 // last sequence number written
	var deleted uint64
	deleteTimer := time.NewTimer(time.Hour)
	deleteTimer.Stop()
	deletePending := false
	deleteAcked := func() error {
		// Only what was sent: after a spool restore the hub's mark can be
		// past records it has not seen (see Spool.Rebase).
		if hw := min(acked.Load(), sent); hw > deleted {
			if err := a.spool.Ack(context.WithoutCancel(ctx), hw); err != nil {
				return fatalError{err}
			}
			deleted = hw
		}
		deleteTimer.Stop()
		deletePending = false
		return nil
	}
	defer deleteAcked()

	progress := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		hw := acked.Load()
		if hw-deleted >= uint64(a.cfg.Batch) {
			if err := deleteAcked(); err != nil {
				return err
			}
		} else if hw > deleted && !deletePending {
			deletePending = true
			deleteTimer.Reset(spoolDeleteEvery)
		}
		inflight := uint64(0)
		if sent > hw {
			inflight = sent - hw
		} else {
			progress = time.Now()
		}
		if inflight < uint64(a.cfg.Window) {
			recs, err := a.spool.PeekAfter(ctx, sent, min(a.cfg.Batch, a.cfg.Window-int(inflight)))
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fatalError{err}
			}
			if len(recs) > 0 {
				if err := st.Send(recs); err != nil {
					return a.streamEnded(recvErr, err)
				}
				sent = recs[len(recs)-1].Seq
				continue
			}
		}
		// Wait for records, acks, the end, or a timeout: no ack for
		// ackTimeout while records are in flight is a hub gone silent;
		// no records for streamIdle ends the stream.
		wait := streamIdle
		if inflight > 0 {
			wait = ackTimeout
		}
		timer.Reset(time.Until(progress.Add(wait)))
		select {
		case <-ctx.Done():
			return nil
		case <-a.spool.Notify():
		case <-kick:
			progress = time.Now()
		case <-deleteTimer.C:
			if err := deleteAcked(); err != nil {
				return err
			}
		case err := <-recvErr:
			// The hub ends streams that idle, grow old or were replaced,
			// after acknowledging what it read: reopen at once and resend
			// the rest. An end before any ack is a hub going away: back off.
			if errors.Is(err, io.EOF) && (sent <= acked.Load() || acked.Load() > 0) {
				return nil
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("hub ended the record stream with %d records unacknowledged", sent-acked.Load())
			}
			return err
		case <-timer.C:
			if inflight > 0 {
				return fmt.Errorf("no acknowledgement from the hub for %s", ackTimeout)
			}
			st.CloseSend()
			timer.Reset(ackTimeout)
			select {
			case err := <-recvErr:
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			case <-timer.C:
				return nil
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// streamEnded explains a failed write: the hub's refusal or the broken
// connection it read, if there is one, else the write error.
func (a *Agent) streamEnded(recvErr <-chan error, werr error) error {
	select {
	case err := <-recvErr:
		if !errors.Is(err, io.EOF) {
			return err
		}
	case <-time.After(time.Second):
	}
	return werr
}

// delivered notes the hub's high-water mark; the status file is rewritten
// at most every statusEvery on this path (acks arrive every few
// milliseconds under load).
func (a *Agent) delivered(hw uint64) {
	now := a.cfg.Now()
	a.mu.Lock()
	a.status.HubConnected, a.status.LastContact, a.status.Delivered, a.status.LastError = true, now, hw, ""
	due := now.Sub(a.statusWritten) >= statusEvery
	a.mu.Unlock()
	if due {
		a.setStatus(func(*Status) {})
	}
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
	a.statusWritten = a.status.Updated
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
