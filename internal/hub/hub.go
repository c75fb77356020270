// Package hub is Vigil's fleet server (`vigil server`): an HTTPS JSON API
// under /api/v1 that enrols agents with one-time tokens, issues their client
// certificates from the hub's CA, serves each the signed policy of its host
// group, and ingests the change records and health events they stream,
// idempotently, into the store and the evidence log. It also keeps the host
// inventory, raises an alert when an agent falls silent, revokes agents,
// throttles sources of refused requests, and shares one PostgreSQL database
// with other hubs.
//
// The handlers return errors; one table (errors.go) maps them to HTTP
// statuses, and nothing internal reaches a client. docs/fleet.md describes
// the design and docs/openapi.yaml the API.
package hub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleetca"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/signing"
	"github.com/vigilfim/vigil/internal/store/postgres"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

// Defaults, each with its reason.
const (
	// DefaultListen is loopback: a hub is exposed on purpose, never by
	// default.
	DefaultListen = "127.0.0.1:8443"
	// DefaultHeartbeat is how often agents report; 30 s keeps 1,000 agents
	// at ~33 heartbeats/s.
	DefaultHeartbeat = 30 * time.Second
	// DefaultMissed heartbeats make an agent silent: three tolerates one
	// lost request and a slow restart.
	DefaultMissed = 3
	// MaxBody bounds every request body (a batch of records); larger
	// requests are refused before being read.
	MaxBody = 4 << 20
	// MaxBatch bounds the records of one ingestion request.
	MaxBatch = 1000
)

// Options configure a hub.
type Options struct {
	// Dir holds the hub's state: CA, signing key, SQLite database,
	// checkpoint copy.
	Dir string
	// DB is a postgres:// URL, or empty for SQLite under Dir.
	DB string
	// Listen is the address to listen on; DefaultListen if empty.
	Listen string
	// Hosts are extra names and IPs for the server certificate.
	Hosts []string
	// Policy is the policy YAML served to agents; the built-in default
	// if nil.
	Policy []byte
	// Heartbeat and Missed define agent silence.
	Heartbeat time.Duration
	Missed    int
	// RefusalBurst and RefusalEvery limit refused requests per source:
	// RefusalBurst are recorded one by one, then the source gets 429 until
	// it earns one back every RefusalEvery. Defaults DefaultRefusalBurst
	// and DefaultRefusalEvery.
	RefusalBurst int
	RefusalEvery time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Log receives operational messages; discarded if nil.
	Log *slog.Logger
}

// hubStore is what the hub needs of a store.
type hubStore interface {
	fleet.Store
	evidence.Store
	evidence.CheckpointerStore
	Close() error
}

// Hub is an open hub.
type Hub struct {
	opts    Options
	store   hubStore
	evStore relayStore
	log     *evidence.Log
	cpr     *evidence.Checkpointer
	ca      *fleetca.CA
	key     *signing.Key
	srvCert tls.Certificate
	policy  []byte
	ln      net.Listener
	ingest  chan *ingestReq
	quit    chan struct{} // closed when the committer stopped
	wake    chan struct{}
	logger  *slog.Logger
	limit   *limiter
	// leaser elects the relaying hub when several share the database.
	leaser relayLeaser

	streamMu      sync.Mutex
	streams       map[string]*stream // by agent id
	streamsClosed bool

	// AdminToken is set when Open created the first admin: it is shown
	// once and stored only as a hash.
	AdminToken string
}

// Open opens (creating on first start) the hub's state and binds its
// listener, so Addr is valid before Serve.
func Open(ctx context.Context, opts Options) (*Hub, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Missed <= 0 {
		opts.Missed = DefaultMissed
	}
	if opts.RefusalBurst <= 0 {
		opts.RefusalBurst = DefaultRefusalBurst
	}
	if opts.RefusalEvery <= 0 {
		opts.RefusalEvery = DefaultRefusalEvery
	}
	logger := opts.Log
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create hub directory: %w", err)
	}
	h := &Hub{opts: opts, logger: logger, ingest: make(chan *ingestReq, maxGroup),
		quit: make(chan struct{}), wake: make(chan struct{}, 1), streams: make(map[string]*stream),
		limit: newLimiter(opts.RefusalBurst, opts.RefusalEvery, opts.Now)}
	var err error
	if h.ca, err = fleetca.LoadOrCreate(filepath.Join(opts.Dir, "ca"), opts.Now); err != nil {
		return nil, fmt.Errorf("open hub ca: %w", err)
	}
	if h.key, err = signing.LoadOrCreate(filepath.Join(opts.Dir, "hub.key"), "vigil-hub"); err != nil {
		return nil, fmt.Errorf("open hub key: %w", err)
	}
	pair, err := h.ca.ServerCert(opts.Hosts)
	if err != nil {
		return nil, err
	}
	h.srvCert = tls.Certificate{Certificate: pair.Cert, PrivateKey: pair.Key}
	h.policy = opts.Policy
	if h.policy == nil {
		h.policy = policy.DefaultSource()
	}
	if _, err := policy.Parse("hub policy", h.policy); err != nil {
		return nil, fmt.Errorf("load hub policy: %w", err)
	}
	if strings.HasPrefix(opts.DB, "postgres://") || strings.HasPrefix(opts.DB, "postgresql://") {
		var pg *postgres.DB
		if pg, err = postgres.Open(ctx, opts.DB); err == nil {
			h.store, h.leaser = pg, pg
		}
	} else if opts.DB == "" {
		h.store, err = sqlite.Open(ctx, filepath.Join(opts.Dir, "hub.sqlite"))
	} else {
		err = fmt.Errorf("unsupported database %q: want a postgres:// URL or none for SQLite", opts.DB)
	}
	if err != nil {
		return nil, fmt.Errorf("open hub store: %w", err)
	}
	h.evStore = h.store
	if h.log, err = evidence.OpenLog(ctx, h.store, evidence.LogOptions{}); err != nil {
		h.store.Close()
		return nil, fmt.Errorf("open evidence log: %w", err)
	}
	h.cpr = evidence.NewCheckpointer(h.store, h.key.Signer(), h.key.Verifier(), evidence.CheckpointerOptions{
		File: filepath.Join(opts.Dir, "evidence.checkpoint"),
	})
	if err := h.bootstrap(ctx); err != nil {
		h.close()
		return nil, err
	}
	if h.ln, err = net.Listen("tcp", opts.Listen); err != nil {
		h.close()
		return nil, fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	return h, nil
}

// bootstrap creates the first admin on a fresh hub.
func (h *Hub) bootstrap(ctx context.Context) error {
	n, err := h.store.UserCount(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	tok := newSecret()
	if err := h.store.CreateUser(ctx, fleet.User{Name: "admin", Role: fleet.RoleAdmin}, hashToken(tok)); err != nil {
		return fmt.Errorf("create admin: %w", err)
	}
	h.AdminToken = tok
	return h.record(ctx, evidence.KindUserAction, "vigil/hub", map[string]string{"action": "bootstrap", "user": "admin", "role": "admin"})
}

// Addr is the address the hub listens on.
func (h *Hub) Addr() net.Addr { return h.ln.Addr() }

// URL is the hub's base URL.
func (h *Hub) URL() string { return "https://" + h.ln.Addr().String() }

// CA returns the hub's certificate authority.
func (h *Hub) CA() *fleetca.CA { return h.ca }

// Store returns the hub's store (for tests and the CLI's read-only views).
func (h *Hub) Store() fleet.Store { return h.store }

// TLSConfig is the listener's TLS configuration. Client certificates are
// requested but verified by the agent middleware rather than the handshake:
// one port serves enrolment (server-auth TLS plus a token), the users' API
// (bearer tokens) and the agents' endpoints (client certificate required),
// and a refused certificate gets a JSON error naming what was wrong and an
// evidence record instead of a bare handshake alert.
func (h *Hub) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{h.srvCert},
		ClientAuth:   tls.RequestClientCert,
	}
}

// Serve serves until ctx ends, then shuts down, finishing the queued
// ingestion and evidence appends, and signs a last checkpoint.
func (h *Hub) Serve(ctx context.Context) error {
	srv := &http.Server{
		Handler:           h.Handler(),
		TLSConfig:         h.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(h.logger.Handler(), slog.LevelDebug),
	}
	wctx, work := context.WithCancel(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(wctx)
	g.Go(func() error {
		defer close(h.quit)
		return h.committer(gctx)
	})
	g.Go(func() error { return h.relay(gctx, h.wake) })
	g.Go(func() error { return h.watchSilence(gctx) })
	g.Go(func() error { return ignoreCanceled(h.cpr.Run(gctx)) })
	g.Go(func() error { return h.refusalFlusher(gctx) })
	// Streams never go idle by themselves: end them (after their last
	// acks) when shutting down.
	srv.RegisterOnShutdown(h.stopStreams)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(tls.NewListener(h.ln, srv.TLSConfig)) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	case <-gctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	work()
	err = errors.Join(err, ignoreCanceled(g.Wait()))
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, h.close())
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (h *Hub) close() error {
	var errs []error
	if h.ln != nil {
		h.ln.Close()
	}
	if h.log != nil {
		errs = append(errs, h.log.Close())
		if _, err := h.cpr.Checkpoint(context.Background()); err != nil {
			errs = append(errs, fmt.Errorf("sign evidence checkpoint: %w", err))
		}
	}
	errs = append(errs, h.store.Close())
	return errors.Join(errs...)
}

// record appends one hub event to the evidence log. A failure fails the
// request that caused it: an action the evidence cannot hold must not
// happen silently.
func (h *Hub) record(ctx context.Context, kind, actor string, body any) error {
	r, err := evidence.NewRecord(kind, h.opts.Now(), "", actor, body)
	if err != nil {
		return fmt.Errorf("record %s evidence: %w", kind, err)
	}
	if _, err := h.log.Append(ctx, r); err != nil {
		return fmt.Errorf("record %s evidence: %w", kind, err)
	}
	return nil
}

// watchSilence marks agents that missed opts.Missed heartbeats as silent,
// each with a health event and an alert record in the evidence log.
func (h *Hub) watchSilence(ctx context.Context) error {
	t := time.NewTicker(h.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := h.CheckSilence(ctx); err != nil {
			h.logger.Error("check agent silence", "err", err)
		}
	}
}

// CheckSilence runs one silence check now.
func (h *Hub) CheckSilence(ctx context.Context) error {
	cutoff := h.opts.Now().Add(-time.Duration(h.opts.Missed) * h.opts.Heartbeat)
	agents, err := h.store.MarkSilent(ctx, cutoff)
	if err != nil {
		return err
	}
	for _, a := range agents {
		body := map[string]any{"event": "agent_silent", "agent": a.ID, "host": a.Host,
			"last_seen": a.LastSeen.Format(time.RFC3339Nano), "missed_heartbeats": h.opts.Missed}
		if err := h.recordHost(ctx, evidence.KindHealth, a.Host, body); err != nil {
			return err
		}
		if err := h.recordHost(ctx, "alert", a.Host, body); err != nil {
			return err
		}
	}
	return nil
}

func (h *Hub) recordHost(ctx context.Context, kind, host string, body any) error {
	return h.recordHostActor(ctx, kind, host, "vigil/hub", body)
}

// recordHostActor appends one event about a host, done by actor.
func (h *Hub) recordHostActor(ctx context.Context, kind, host, actor string, body any) error {
	r, err := evidence.NewRecord(kind, h.opts.Now(), host, actor, body)
	if err != nil {
		return fmt.Errorf("record %s evidence: %w", kind, err)
	}
	if _, err := h.log.Append(ctx, r); err != nil {
		return fmt.Errorf("record %s evidence: %w", kind, err)
	}
	return nil
}

// newSecret returns 32 random bytes, base64url.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(tok string) []byte {
	s := sha256.Sum256([]byte(tok))
	return s[:]
}
