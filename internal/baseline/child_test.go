package baseline

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"
)

// childEnv selects a child mode: tests re-execute the test binary (so that
// it can be SIGKILLed, or its peak RSS measured on its own).
const childEnv = "VIGIL_BASELINE_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runChild(mode, os.Getenv(childEnv+"_PATH"), os.Getenv(childEnv+"_N")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childTB lets the test helpers run outside a test: a failure ends the
// child with an error status.
type childTB struct{ testing.TB }

func (childTB) Helper()                   {}
func (childTB) Fatal(args ...any)         { fmt.Fprintln(os.Stderr, args...); os.Exit(1) }
func (childTB) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(1) }

func runChild(mode, path, nstr string) error {
	n, _ := strconv.Atoi(nstr)
	switch mode {
	case "write":
		return writeSynth(path, n, 7, 2, nil)
	case "crash-write":
		out := bufio.NewWriter(os.Stdout)
		return writeSynth(path, n, 7, 2, out)
	case "read":
		_, v := testKey(childTB{}, "vigil-host1")
		r, err := Open(path, v)
		if err != nil {
			return err
		}
		defer r.Close()
		for {
			_, _, err := r.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// writeSynth writes a baseline of n synthetic entries. With progress set,
// it reports "added K" every 1000 entries, "commit" before Commit and
// "done" after, flushing each line so the parent sees it at once.
func writeSynth(path string, n int, seed, generation uint64, progress *bufio.Writer) error {
	s, _ := testKey(childTB{}, "vigil-host1")
	h := testHeader()
	h.Generation = generation
	h.Created = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w, err := Create(path, s, h)
	if err != nil {
		return err
	}
	say := func(f string, a ...any) {
		if progress != nil {
			fmt.Fprintf(progress, f+"\n", a...)
			progress.Flush()
		}
	}
	g := newSynth(n, seed)
	i := 0
	for e := g.next(); e != nil; e = g.next() {
		if err := w.Add(e, 0); err != nil {
			w.Abort()
			return err
		}
		if i++; i%1000 == 0 {
			say("added %d", i)
		}
	}
	say("commit")
	if err := w.Commit(); err != nil {
		return err
	}
	say("done")
	return nil
}
