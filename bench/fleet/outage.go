package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/hub"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

// runHub serves an in-process hub until the returned stop is called.
func runHub(dir, listen string) (*hub.Hub, func() error, error) {
	h, err := hub.Open(context.Background(), hub.Options{Dir: dir, Listen: listen})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx) }()
	return h, func() error { cancel(); return <-done }, nil
}

func waitUntil(what string, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func outage(args []string) error {
	fs := flag.NewFlagSet("outage", flag.ExitOnError)
	n := fs.Int("n", 100000, "changes made while the hub is down")
	fs.Parse(args)
	ctx := context.Background()
	base, err := os.MkdirTemp("", "vigil-outage-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	hubDir, agentDir := filepath.Join(base, "hub"), filepath.Join(base, "agent")

	h, stop, err := runHub(hubDir, "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := h.Addr().String()
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.CA().Pool()}}}
	var tok hub.EnrollTokenResponse
	if err := post(plain, h.URL()+"/api/v1/enrollment-tokens", h.AdminToken, hub.EnrollTokenRequest{}, &tok); err != nil {
		return err
	}
	if _, err := agent.Enroll(ctx, agentDir, h.URL(), tok.Token, "bench"); err != nil {
		return err
	}
	a, err := agent.Open(ctx, agent.Config{Dir: agentDir, Heartbeat: time.Hour, MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
	if err != nil {
		return err
	}
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	adone := make(chan error, 1)
	go func() { adone <- a.Run(actx) }()
	if err := waitUntil("policy", time.Minute, func() bool { return a.Status().PolicyVersion != "" }); err != nil {
		return err
	}
	if err := stop(); err != nil {
		return err
	}

	t0 := time.Now()
	for i := 1; i <= *n; i++ {
		if _, err := a.Spool().Append(ctx, fleet.KindChange, time.Now(), body(0, i)); err != nil {
			return err
		}
	}
	spoolTime := time.Since(t0)
	fi, _ := os.Stat(filepath.Join(agentDir, "spool.sqlite"))
	var spoolSize int64
	if fi != nil {
		spoolSize = fi.Size()
	}
	fmt.Printf("spooled %d changes with the hub down in %s (%.0f durable appends/s), spool file %d MiB\n",
		*n, spoolTime.Round(time.Millisecond), float64(*n)/spoolTime.Seconds(), spoolSize>>20)

	_, stop, err = runHub(hubDir, addr)
	if err != nil {
		return err
	}
	t1 := time.Now()
	if err := waitUntil("drain", time.Hour, func() bool {
		d, _ := a.Spool().Depth(ctx)
		return d == 0
	}); err != nil {
		return err
	}
	drain := time.Since(t1)
	fmt.Printf("hub back: spool drained in %s (%.0f records/s, includes up to one backoff of <= 2 s)\n",
		drain.Round(time.Millisecond), float64(*n)/drain.Seconds())
	acancel()
	<-adone
	a.Close()
	t2 := time.Now()
	if err := stop(); err != nil {
		return err
	}
	fmt.Printf("hub stop (evidence relay drained) took %s\n", time.Since(t2).Round(time.Millisecond))

	db, err := sqlite.Open(ctx, filepath.Join(hubDir, "hub.sqlite"))
	if err != nil {
		return err
	}
	defer db.Close()
	var rid int64
	want := uint64(1)
	for {
		recs, err := db.RecordsAfter(ctx, rid, 10000)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Seq != want {
				return fmt.Errorf("hub record %d has seq %d: out of order or duplicated", want, r.Seq)
			}
			want++
		}
		rid = recs[len(recs)-1].RID
	}
	size, _ := db.LogSize(ctx)
	changes := 0
	db.ScanLeaves(ctx, 0, size, func(l *evidence.StoredLeaf) error {
		if l.Kind == evidence.KindChange {
			changes++
		}
		return nil
	})
	fmt.Printf("hub holds %d records in order 1..%d, evidence log %d change records\n", want-1, want-1, changes)
	if int(want-1) != *n || changes != *n {
		return fmt.Errorf("lost or duplicated records")
	}
	return nil
}
