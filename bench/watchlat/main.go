// Command watchlat measures `vigil watch --json` end to end: the time from
// a writer's close() to the JSON line for that change arriving on watch's
// stdout, with who-data, at a fixed write rate; and the same workload under
// `inotifywait -m` as the floor (inotify reports only a name, no who-data,
// no hash, no diff).
//
//	go build -o /tmp/vigil ./cmd/vigil && go run ./bench/watchlat -vigil /tmp/vigil
//
// Every write goes to its own pre-created file so each line is matched to
// exactly one close(). Run as root (fanotify, audit). The tree is on tmpfs
// by default: ext4 here varies several-fold in speed on its own.
package main

import (
	"bufio"
	"context"
	"encoding/json"
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
)

func main() {
	vigil := flag.String("vigil", "", "vigil binary")
	parent := flag.String("dir", "/dev/shm", "where to make the test tree")
	rate := flag.Int("rate", 2000, "writes per second")
	dur := flag.Duration("duration", 30*time.Second, "how long to write")
	tools := flag.String("tools", "inotifywait,vigil", "tools to measure, in order")
	writer := flag.String("writer", "", "internal: write the files under this directory")
	watchArgs := flag.String("watch-args", "", "extra arguments for vigil watch, space-separated (e.g. --who-mode=syscall)")
	flag.Parse()
	n := *rate * int(*dur/time.Second)
	if *writer != "" {
		if err := write(*writer, *rate, n); err != nil {
			fmt.Fprintln(os.Stderr, "watchlat writer:", err)
			os.Exit(1)
		}
		return
	}
	if *vigil == "" {
		fmt.Fprintln(os.Stderr, "watchlat: -vigil is required")
		os.Exit(2)
	}
	fmt.Printf("workload: %d writes/s for %s (%d files), close() -> line on the tool's stdout\n", *rate, *dur, n)
	fmt.Printf("%-12s %8s %8s %8s %8s %8s %s\n", "tool", "p50 ms", "p90 ms", "p99 ms", "max ms", "lost", "who-data")
	for _, tool := range strings.Split(*tools, ",") {
		res, err := measure(tool, *vigil, *watchArgs, *parent, *rate, n)
		if err != nil {
			fmt.Fprintf(os.Stderr, "watchlat %s: %v\n", tool, err)
			os.Exit(1)
		}
		fmt.Println(res)
	}
}

func fileName(i int) string { return fmt.Sprintf("f%07d", i) }

func write(dir string, rate, n int) error {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	start := time.Now()
	buf := []byte("changed by the writer\n")
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
		fd, err := unix.Open(filepath.Join(dir, fileName(i)), unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if _, err := unix.Write(fd, buf); err != nil {
			return err
		}
		if err := unix.Close(fd); err != nil {
			return err
		}
		fmt.Fprintf(out, "%d %d\n", i, time.Now().UnixNano())
	}
	return nil
}

type result struct {
	tool               string
	p50, p90, p99, max time.Duration
	lost               int
	who                string
}

func (r result) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
	return fmt.Sprintf("%-12s %8s %8s %8s %8s %8d %s", r.tool, ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max), r.lost, r.who)
}

func measure(tool, vigil, extraArgs, parent string, rate, n int) (result, error) {
	dir, err := os.MkdirTemp(parent, "watchlat-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	tree := filepath.Join(dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return result{}, err
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(tree, fileName(i)), []byte("original\n"), 0o644); err != nil {
			return result{}, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cmd *exec.Cmd
	ready := make(chan struct{})
	switch tool {
	case "vigil":
		db := filepath.Join(dir, "state", "baseline.vgl")
		if out, err := exec.Command(vigil, "baseline", "--db", db, tree).CombinedOutput(); err != nil {
			return result{}, fmt.Errorf("baseline: %v: %s", err, out)
		}
		cmd = exec.CommandContext(ctx, vigil, append([]string{"watch", "--db", db, "--json"}, strings.Fields(extraArgs)...)...)
	case "inotifywait":
		cmd = exec.CommandContext(ctx, "inotifywait", "-m", "-r", "-q", "-e", "close_write", "--format", "%w%f", tree)
		close(ready) // -q: no "established" line; give it a moment below
	default:
		return result{}, fmt.Errorf("unknown tool %q", tool)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	arrived := make([]int64, n)
	var whoSeen, whoAudit, total int
	var mu sync.Mutex
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var once sync.Once
		for sc.Scan() {
			now := time.Now().UnixNano()
			line := sc.Bytes()
			path := string(line)
			if tool == "vigil" {
				var l struct {
					Path   string `json:"path"`
					Health *struct {
						Kind string `json:"kind"`
					} `json:"health"`
					Who *struct {
						Attribution string `json:"attribution"`
					} `json:"who"`
				}
				if json.Unmarshal(line, &l) != nil {
					continue
				}
				if l.Health != nil && l.Health.Kind == "watcher-started" {
					once.Do(func() { close(ready) })
				}
				path = l.Path
				if l.Who != nil && l.Who.Attribution != "unavailable" && strings.HasPrefix(filepath.Base(path), "f") {
					mu.Lock()
					whoSeen++
					if l.Who.Attribution == "audit" {
						whoAudit++
					}
					mu.Unlock()
				}
			}
			i, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "f"))
			if err != nil || i < 0 || i >= n || filepath.Dir(path) != tree {
				continue
			}
			mu.Lock()
			if arrived[i] == 0 {
				arrived[i] = now
				total++
			}
			mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Minute):
		return result{}, fmt.Errorf("%s did not start", tool)
	}
	time.Sleep(500 * time.Millisecond) // inotifywait sets watches after it starts
	self, _ := os.Executable()
	w := exec.Command(self, "-writer", tree, "-rate", strconv.Itoa(rate), "-duration", (time.Duration(n/rate) * time.Second).String())
	w.Stderr = os.Stderr
	wout, err := w.Output()
	if err != nil {
		return result{}, fmt.Errorf("writer: %v", err)
	}
	closed := make([]int64, n)
	for _, l := range strings.Split(strings.TrimSpace(string(wout)), "\n") {
		var i int
		var t int64
		if _, err := fmt.Sscanf(l, "%d %d", &i, &t); err == nil && i < n {
			closed[i] = t
		}
	}
	// Wait for stragglers: until nothing new arrives for 3 s.
	for last := -1; ; {
		time.Sleep(3 * time.Second)
		mu.Lock()
		cur := total
		mu.Unlock()
		if cur == last || cur == n {
			break
		}
		last = cur
	}
	cancel()
	cmd.Wait()
	<-readerDone
	var lat []time.Duration
	lost := 0
	for i := range n {
		if arrived[i] == 0 || closed[i] == 0 {
			lost++
			continue
		}
		lat = append(lat, time.Duration(arrived[i]-closed[i]))
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	who := "n/a"
	if tool == "vigil" {
		who = fmt.Sprintf("%d/%d (%d audit)", whoSeen, n, whoAudit)
	}
	return result{tool: tool, p50: q(0.50), p90: q(0.90), p99: q(0.99), max: q(1), lost: lost, who: who}, nil
}
