// Command fleet measures the hub and the agent's spool on loopback.
//
//	go build -o /tmp/vigil ./cmd/vigil && go run ./bench/fleet -vigil /tmp/vigil load -agents 1000 -rate 20 -duration 60s
//	go run ./bench/fleet -vigil /tmp/vigil load -db 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' ...
//	go run ./bench/fleet outage -n 100000
//
// load starts `vigil server` as its own process (so its CPU time and RSS are
// the hub's alone), enrols the agents, and has each send -rate changes a
// second for -duration the way the agent's sender does: records queue as
// they are made and each agent posts what has queued whenever its previous
// request is answered. It reports records sent and persisted, the ingest
// latency (record made → acknowledged durable) percentiles, and the hub's
// CPU time and peak RSS.
//
// outage enrols one real agent (internal/agent, SQLite spool), stops the
// hub, spools -n changes one durable append each (as the watcher does),
// restarts the hub and times the drain, then checks that the hub holds
// every record once, in order.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleetca"
	"github.com/vigilfim/vigil/internal/hub"
)

func main() {
	vigil := flag.String("vigil", "vigil", "vigil binary for the hub process")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: fleet [-vigil BIN] load|outage [flags]")
		os.Exit(2)
	}
	var err error
	switch flag.Arg(0) {
	case "load":
		err = load(*vigil, flag.Args()[1:])
	case "outage":
		err = outage(flag.Args()[1:])
	default:
		err = fmt.Errorf("unknown mode %q", flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// hubProc is a `vigil server` child process.
type hubProc struct {
	cmd   *exec.Cmd
	url   string
	admin string
	pool  *x509.CertPool
}

func startHub(vigil, dir, db string) (*hubProc, error) {
	args := []string{"server", "--dir", dir, "--listen", "127.0.0.1:0"}
	if db != "" {
		args = append(args, "--db", db)
	}
	cmd := exec.Command(vigil, args...)
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// A fresh hub prints its admin token on stdout first.
	line, err := bufio.NewReader(outPipe).ReadString('\n')
	if err != nil {
		cmd.Wait()
		return nil, fmt.Errorf("hub exited before printing its admin token")
	}
	admin := strings.TrimSpace(line[strings.LastIndex(line, " ")+1:])
	sc := bufio.NewScanner(errPipe)
	for sc.Scan() {
		_, rest, ok := strings.Cut(sc.Text(), "hub listening on ")
		if !ok {
			continue
		}
		go io.Copy(os.Stderr, errPipe)
		h := &hubProc{cmd: cmd, url: strings.Fields(rest)[0], admin: admin}
		ca, err := os.ReadFile(filepath.Join(dir, "ca", "ca.crt"))
		if err != nil {
			return nil, err
		}
		h.pool = x509.NewCertPool()
		h.pool.AppendCertsFromPEM(ca)
		return h, nil
	}
	cmd.Wait()
	return nil, fmt.Errorf("hub exited before listening")
}

// cpu returns the process's user+system CPU time and its peak RSS.
func (h *hubProc) cpu() (time.Duration, int64) { return procCPU(h.cmd.Process.Pid) }

func procCPU(pid int) (time.Duration, int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	var hwm int64
	s, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			hwm, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, hwm * 1024 // USER_HZ = 100
}

func post(c *http.Client, u, token string, in, out any) error {
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", u, bytes.NewReader(b))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %d %s", u, resp.StatusCode, body)
	}
	return json.Unmarshal(body, out)
}

type simAgent struct {
	client *http.Client
	id     string
	url    string
}

func enrollSim(h *hubProc, i int) (*simAgent, error) {
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pool}}}
	var tok hub.EnrollTokenResponse
	if err := post(plain, h.url+"/api/v1/enrollment-tokens", h.admin, hub.EnrollTokenRequest{}, &tok); err != nil {
		return nil, err
	}
	keyPEM, csrPEM, err := fleetca.NewKeyAndCSR(fmt.Sprintf("sim%d", i))
	if err != nil {
		return nil, err
	}
	var er hub.EnrollResponse
	if err := post(plain, h.url+"/api/v1/enroll", "", hub.EnrollRequest{Token: tok.Token, Host: fmt.Sprintf("sim%04d", i), CSR: string(csrPEM)}, &er); err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair([]byte(er.Certificate), keyPEM)
	if err != nil {
		return nil, err
	}
	// No overall timeout: the client carries a long-lived record stream,
	// like the agent's stream client.
	return &simAgent{id: er.AgentID, url: h.url, client: &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: h.pool, Certificates: []tls.Certificate{pair}}, MaxIdleConnsPerHost: 1}}}, nil
}

// body is a realistic change record: ~600 bytes with who-data.
func body(agent, i int) json.RawMessage {
	b := make([]byte, 0, len(bodyHead)+len(bodyMid)+len(bodyTail)+20)
	b = append(b, bodyHead...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, bodyMid...)
	b = strconv.AppendInt(b, int64(agent), 10)
	return append(b, bodyTail...)
}

const (
	bodyHead = `{"path":"/etc/app/conf.d/file`
	bodyMid  = `.conf","type":"modified","severity":"high","rule":"app config","changed":["size","mtime","ctime","sha256"],"old":{"size":1200,"mode":"-rw-r--r--","uid":0,"gid":0,"mtime":"2026-11-23T10:00:00Z","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},"new":{"size":1234,"mode":"-rw-r--r--","uid":0,"gid":0,"mtime":"2026-11-23T17:00:00Z","sha256":"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"},"time":"2026-11-23T17:00:00.123456789Z","source":"fanotify","who":{"attribution":"audit","pid":`
	bodyTail = `,"uid":0,"auid":1000,"user":"root","login_user":"ann","exe":"/usr/bin/vim","cmdline":["vim","file.conf"],"tty":"pts/0"}}`
)

func load(vigil string, args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	n := fs.Int("agents", 1000, "simulated agents")
	rate := fs.Int("rate", 20, "changes per second per agent")
	dur := fs.Duration("duration", 60*time.Second, "how long each agent sends")
	db := fs.String("db", "", "postgres URL (a fresh schema is created in it); SQLite if empty")
	cpuprofile := fs.String("cpuprofile", "", "write the load generator's CPU profile here")
	fs.Parse(args)

	dir, err := os.MkdirTemp("", "vigil-fleet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *db != "" {
		schema := fmt.Sprintf("vigil_bench_%d", time.Now().UnixNano())
		conn, err := pgx.Connect(context.Background(), *db)
		if err != nil {
			return err
		}
		if _, err := conn.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
			return err
		}
		defer conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		u, _ := url.Parse(*db)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		*db = u.String()
	}
	h, err := startHub(vigil, dir, *db)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			h.cmd.Process.Signal(os.Interrupt)
			h.cmd.Wait()
		}
	}()

	agents := make([]*simAgent, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var enrollErr atomic.Value
	t0 := time.Now()
	for i := range agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a, err := enrollSim(h, i)
			if err != nil {
				enrollErr.Store(err)
				return
			}
			agents[i] = a
		}()
	}
	wg.Wait()
	if e := enrollErr.Load(); e != nil {
		return e.(error)
	}
	fmt.Printf("enrolled %d agents in %s\n", *n, time.Since(t0).Round(time.Millisecond))
	// Open every agent's stream (TLS handshake included) before the clock
	// starts: agents keep their stream, so handshakes are not ingest load.
	t0 = time.Now()
	streams := make([]*agent.Stream, *n)
	for i, a := range agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, err := agent.OpenStream(context.Background(), a.client, a.url)
			if err != nil {
				enrollErr.Store(err)
				return
			}
			streams[i] = st
		}()
	}
	wg.Wait()
	if e := enrollErr.Load(); e != nil {
		return e.(error)
	}
	fmt.Printf("opened %d streams in %s\n", *n, time.Since(t0).Round(time.Millisecond))

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cpu0, _ := h.cpu()
	gen0, _ := procCPU(os.Getpid())
	start := time.Now()
	lat := make([][]time.Duration, *n)
	var sent, acked, failed atomic.Int64
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[i] = runSim(a, streams[i], i, *rate, *dur, start, &sent, &acked, &failed)
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu1, rss := h.cpu()
	gen1, _ := procCPU(os.Getpid())

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	fmt.Printf("sent %d records, acknowledged %d, failed requests %d, in %s (%.0f records/s)\n",
		sent.Load(), acked.Load(), failed.Load(), wall.Round(time.Millisecond), float64(acked.Load())/wall.Seconds())
	fmt.Printf("ingest latency p50 %s p90 %s p99 %s max %s\n", pct(.5), pct(.9), pct(.99), pct(1))
	fmt.Printf("hub CPU %s over %s (%.0f%% of one core), peak RSS %d MiB\n",
		(cpu1 - cpu0).Round(time.Millisecond), wall.Round(time.Second), 100*(cpu1-cpu0).Seconds()/wall.Seconds(), rss>>20)

	fmt.Printf("load generator CPU %s (%.0f%% of one core)\n", (gen1 - gen0).Round(time.Millisecond), 100*(gen1-gen0).Seconds()/wall.Seconds())

	// Count what the hub holds (high-water marks in its inventory).
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pool}}}
	req, _ := http.NewRequest("GET", h.url+"/api/v1/hosts", nil)
	req.Header.Set("Authorization", "Bearer "+h.admin)
	resp, err := plain.Do(req)
	if err != nil {
		return err
	}
	var hosts struct{ Hosts []fleet.Agent }
	json.NewDecoder(resp.Body).Decode(&hosts)
	resp.Body.Close()
	var persisted uint64
	for _, a := range hosts.Hosts {
		persisted += a.HighWater
	}
	fmt.Printf("persisted at the hub: %d of %d sent\n", persisted, sent.Load())
	// The evidence relay may trail ingestion; a clean stop drains it. The
	// hub's CPU until it exits is the full cost of the records.
	t0 = time.Now()
	h.cmd.Process.Signal(os.Interrupt)
	h.cmd.Wait()
	stopped = true
	if ps := h.cmd.ProcessState; ps != nil {
		total := ps.UserTime() + ps.SystemTime()
		fmt.Printf("hub stop (relay drain) took %s; hub CPU from load start to exit %s\n",
			time.Since(t0).Round(time.Millisecond), (total - cpu0).Round(time.Millisecond))
	}
	if int64(persisted) != sent.Load() {
		return fmt.Errorf("lost records: %d sent, %d persisted", sent.Load(), persisted)
	}
	return nil
}

// sim is one simulated agent's queue: records made and not yet
// acknowledged, in sequence order (what the agent's spool holds).
type sim struct {
	a     *simAgent
	mu    sync.Mutex
	queue []pending
	lat   []time.Duration
	wake  chan struct{} // a record was made (the spool's Notify)
	done  chan struct{} // no more records will be made
	acked *atomic.Int64
}

type pending struct {
	rec  fleet.Record
	made time.Time
}

// runSim makes rate records a second for dur and streams them the way the
// agent's sender does (internal/agent: agent.Stream, up to
// agent.DefaultBatch records per write as soon as they are made, at most
// agent.DefaultWindow unacknowledged, a new stream after a failure); it
// returns per-record latency, made → acknowledged.
func runSim(a *simAgent, st *agent.Stream, idx, rate int, dur time.Duration, start time.Time, sent, acked, failed *atomic.Int64) []time.Duration {
	s := &sim{a: a, wake: make(chan struct{}, 1), done: make(chan struct{}), acked: acked}
	go func() {
		defer close(s.done)
		// Record i is due at start + offset + i*interval, the offset
		// spreading agents over the first interval so they do not fire in
		// step. A late wake-up makes every record that fell due, each
		// "made" at its due time: a starved generator shows as latency
		// instead of as a lower rate.
		interval := time.Second / time.Duration(rate)
		due := start.Add(time.Duration(idx%1000) * interval / 1000)
		end := start.Add(dur)
		t := time.NewTimer(time.Until(due))
		defer t.Stop()
		var seq uint64
		for due.Before(end) {
			<-t.C
			now := time.Now()
			s.mu.Lock()
			k := 0
			for ; !due.After(now) && due.Before(end); due = due.Add(interval) {
				seq++
				s.queue = append(s.queue, pending{fleet.Record{Seq: seq, Kind: fleet.KindChange, Time: due, Body: body(idx, int(seq))}, due})
				k++
			}
			s.mu.Unlock()
			sent.Add(int64(k))
			select {
			case s.wake <- struct{}{}:
			default:
			}
			t.Reset(time.Until(due))
		}
	}()
	for !s.finished() {
		err := s.stream(st)
		st = nil
		if err != nil {
			failed.Add(1)
			fmt.Fprintf(os.Stderr, "agent %d: %v\n", idx, err)
			time.Sleep(100 * time.Millisecond) // a real agent backs off
		}
	}
	return s.lat
}

// finished reports whether all records were made and acknowledged.
func (s *sim) finished() bool {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queue) == 0
	default:
		return false
	}
}

// stream runs one stream until everything is made and acknowledged, or
// the stream fails.
func (s *sim) stream(st *agent.Stream) error {
	if st == nil {
		var err error
		if st, err = agent.OpenStream(context.Background(), s.a.client, s.a.url); err != nil {
			return err
		}
	}
	defer st.Close()
	kick := make(chan struct{}, 1)
	recvErr := make(chan error, 1)
	var ackedHW atomic.Uint64
	go func() {
		for {
			hw, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			now := time.Now()
			s.mu.Lock()
			k := 0
			for k < len(s.queue) && s.queue[k].rec.Seq <= hw {
				s.lat = append(s.lat, now.Sub(s.queue[k].made))
				k++
			}
			s.queue = s.queue[k:]
			s.mu.Unlock()
			s.acked.Add(int64(k))
			ackedHW.Store(hw)
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}()
	var sent uint64
	var recs []fleet.Record
	done := s.done
	for {
		recs = recs[:0]
		limit := ackedHW.Load() + agent.DefaultWindow
		s.mu.Lock()
		// The queue starts at the oldest unacknowledged record and
		// ascends by one: the first unsent is at sent+1-first.
		i := 0
		if len(s.queue) > 0 && sent >= s.queue[0].rec.Seq {
			i = int(sent + 1 - s.queue[0].rec.Seq)
		}
		for ; i < len(s.queue) && len(recs) < agent.DefaultBatch && s.queue[i].rec.Seq <= limit; i++ {
			recs = append(recs, s.queue[i].rec)
		}
		s.mu.Unlock()
		if len(recs) > 0 {
			if err := st.Send(recs); err != nil {
				return err
			}
			sent = recs[len(recs)-1].Seq
			continue
		}
		if s.finished() {
			st.CloseSend()
			if err := <-recvErr; !errors.Is(err, io.EOF) {
				return err
			}
			return nil
		}
		select {
		case <-s.wake:
		case <-kick:
		case <-done:
			done = nil // closed: wait for the acks
		case err := <-recvErr:
			return fmt.Errorf("stream ended: %w", err)
		}
	}
}
