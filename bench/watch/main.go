// Command watch measures the watcher end to end (docs/watch.md):
//
//	latency: a child process (audit does not record the audit listener's
//	  own syscalls, so the writer must be another process) writes (open,
//	  write, close) to distinct existing files at a fixed rate and reports
//	  each close() time; measured is close() → event delivered with
//	  who-data;
//	burst: creates many files as fast as possible and checks that every
//	  one is reported, directly or through a rescan of its root.
//
// Run as root (fanotify and audit). Use tmpfs (the default directory):
// ext4 here creates files at a rate that varies 6-fold on its own.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/watch"
	"github.com/vigilfim/vigil/internal/whodata"
)

func main() {
	mode := flag.String("mode", "latency", "latency or burst")
	parent := flag.String("dir", "/dev/shm", "directory to create the test tree in")
	rate := flag.Int("rate", 2000, "latency: writes per second")
	dur := flag.Duration("duration", 15*time.Second, "latency: how long to write")
	count := flag.Int("count", 200000, "burst: files to create")
	backend := flag.String("backend", "auto", "auto, fanotify or inotify")
	noWho := flag.Bool("nowho", false, "no who-data")
	writeRoot := flag.String("write", "", "internal: act as the writer child for this root")
	createRoot := flag.String("create", "", "internal: act as the creator child for this root")
	flag.Parse()
	if *createRoot != "" {
		for i := range *count {
			fd, err := unix.Open(filepath.Join(*createRoot, strconv.Itoa(i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err != nil {
				fmt.Fprintln(os.Stderr, "watch bench creator:", err)
				os.Exit(1)
			}
			unix.Close(fd)
		}
		return
	}
	if *writeRoot != "" {
		if err := writer(*writeRoot, *rate, *rate*int(*dur/time.Second)); err != nil {
			fmt.Fprintln(os.Stderr, "watch bench writer:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*mode, *parent, *rate, *dur, *count, *backend, *noWho); err != nil {
		fmt.Fprintln(os.Stderr, "watch bench:", err)
		os.Exit(1)
	}
}

func run(mode, parent string, rate int, dur time.Duration, count int, backend string, noWho bool) error {
	root, err := os.MkdirTemp(parent, "vigil-watch-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	opts := watch.Options{NoWhoData: noWho}
	switch backend {
	case "fanotify":
		opts.Backend = watch.BackendFanotify
	case "inotify":
		opts.Backend = watch.BackendInotify
	}
	switch mode {
	case "latency":
		return latency(root, opts, rate, dur)
	case "burst":
		return burst(root, opts, count)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func start(root string, opts watch.Options) (*watch.Watcher, error) {
	w, err := watch.New(context.Background(), []string{root}, opts)
	if err != nil {
		return nil, err
	}
	fmt.Printf("backend %s\n", w.Backend())
	return w, nil
}

func latency(root string, opts watch.Options, rate int, dur time.Duration) error {
	n := rate * int(dur/time.Second)
	for i := range n { // distinct files: one write, one event, no merging
		if err := os.WriteFile(filepath.Join(root, strconv.Itoa(i)), nil, 0o644); err != nil {
			return err
		}
	}
	w, err := start(root, opts)
	if err != nil {
		return err
	}
	defer w.Close()
	var mu sync.Mutex
	closed := make(map[string]time.Time, n)
	seen := make(map[string]time.Time, n) // events that beat the writer's report
	cmd := exec.Command("/proc/self/exe", "-write", root, "-rate", strconv.Itoa(rate), "-duration", dur.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var lat []time.Duration
	record := func(d time.Duration) { lat = append(lat, d) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			name, ns, _ := strings.Cut(sc.Text(), " ")
			v, _ := strconv.ParseInt(ns, 10, 64)
			p, t0 := filepath.Join(root, name), time.Unix(0, v)
			mu.Lock()
			if t1, ok := seen[p]; ok {
				delete(seen, p)
				record(t1.Sub(t0))
			} else {
				closed[p] = t0
			}
			mu.Unlock()
		}
	}()
	attributed := map[whodata.Attribution]int{}
	timeout := time.After(dur + 30*time.Second)
	for events := 0; events < n; {
		select {
		case e := <-w.Events():
			if e.Health != nil {
				fmt.Printf("health %s: %s (dropped %d)\n", e.Health.Kind, e.Health.Message, e.Health.Dropped)
				continue
			}
			now := time.Now()
			events++
			mu.Lock()
			if t0, ok := closed[e.Path]; ok {
				delete(closed, e.Path)
				record(now.Sub(t0))
			} else {
				seen[e.Path] = now
			}
			mu.Unlock()
			if e.Who != nil {
				attributed[e.Who.Attribution]++
			}
		case <-timeout:
			return fmt.Errorf("only %d of %d writes reported", events, n)
		}
	}
	<-done
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	fmt.Printf("writes %d at %d/s: close→event p50 %v p90 %v p99 %v max %v\n",
		len(lat), rate, pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1])
	fmt.Printf("attribution %v; stats %+v\n", attributed, w.Stats())
	return nil
}

// writer is the child of latency: it appends to files 0..n-1 at rate per
// second and prints "name close_time_ns" after each close.
func writer(root string, rate, n int) error {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		p := filepath.Join(root, strconv.Itoa(i))
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		unix.Write(fd, []byte("x"))
		unix.Close(fd)
		fmt.Fprintf(out, "%d %d\n", i, time.Now().UnixNano())
		if i%64 == 0 {
			out.Flush()
		}
	}
	return nil
}

func burst(root string, opts watch.Options, count int) error {
	w, err := start(root, opts)
	if err != nil {
		return err
	}
	defer w.Close()
	reported := make(map[string]bool, count)
	rescanned := false
	var rescans, health int
	drained := make(chan struct{})
	var last time.Time
	go func() {
		defer close(drained)
		for e := range w.Events() {
			switch {
			case e.Health != nil:
				health++
				fmt.Printf("health %s: %s (dropped %d)\n", e.Health.Kind, e.Health.Message, e.Health.Dropped)
			case e.Rescan && fim.IsWithin(root, e.Path):
				rescans++
				rescanned = true
			default:
				reported[e.Path] = true
			}
			last = time.Now()
			if len(reported) == count {
				return
			}
		}
	}()
	t0 := time.Now()
	// A child creates the files, so that audit records them (it does not
	// record the listener's own syscalls).
	cmd := exec.Command("/proc/self/exe", "-create", root, "-count", strconv.Itoa(count))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("creator: %w", err)
	}
	created := time.Since(t0)
	select {
	case <-drained:
	case <-time.After(120 * time.Second):
		if !rescanned {
			return fmt.Errorf("only %d of %d creates reported and no rescan", len(reported), count)
		}
	}
	w.Close()
	fmt.Printf("created %d in %v; reported directly %d, root rescans %d; last event %v after first create\n",
		count, created, len(reported), rescans, last.Sub(t0))
	if len(reported) < count && !rescanned {
		return fmt.Errorf("lost %d creates", count-len(reported))
	}
	fmt.Printf("stats %+v\n", w.Stats())
	return nil
}
