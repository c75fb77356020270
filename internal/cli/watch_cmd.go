package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilfim/vigil/internal/baseline"
	"github.com/vigilfim/vigil/internal/control"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/monitor"
	"github.com/vigilfim/vigil/internal/record"
	"github.com/vigilfim/vigil/internal/signing"
	"github.com/vigilfim/vigil/internal/watch"
	"github.com/vigilfim/vigil/internal/whodata"
)

func newWatchCmd(e *env) *cobra.Command {
	var sf stateFlags
	var jf journalFlags
	var policyFile, backend string
	var asJSON, noWho bool
	var whoMode string
	var fullEvery time.Duration
	c := &cobra.Command{
		Use:   "watch [--db FILE] [--policy FILE] [--json] [PATH...]",
		Short: "Report changes as they happen, with who made them",
		Long: `Checks the whole baseline first (changes made while Vigil was not running are
reported with source "startup"), then watches the monitored trees and reports
each change as it happens, with who made it: user, login user (which survives
su and sudo), process, command line and container. Runs in the foreground
until interrupted.

Real-time events come from fanotify (whole file systems, no per-directory
watches), or inotify where fanotify is not permitted; who-data from the Linux
audit subsystem. Lost events are never silent: the affected trees are
rescanned and the loss is reported as a health event.`,
		RunE: func(c *cobra.Command, args []string) (retErr error) {
			sp, err := sf.resolve()
			if err != nil {
				return err
			}
			r, err := openBaseline(sp, sf.pubkey) // clear messages for missing/tampered
			if err != nil {
				return err
			}
			r.Close()
			v, err := verifierFor(sp, sf.pubkey)
			if err != nil {
				return err
			}
			ix, err := baseline.OpenIndex(sp.db, v)
			if err != nil {
				return err
			}
			defer ix.Close()
			pol, err := policyOfHeader(ix.Header(), policyFile)
			if err != nil {
				return err
			}
			if len(args) > 0 {
				abs, err := absPaths(args)
				if err != nil {
					return err
				}
				if pol, err = pol.Restrict(abs); err != nil {
					return err
				}
			}
			wopts := watch.Options{NoWhoData: noWho}
			if whoMode != "" {
				m, err := whodata.ParseMode(whoMode)
				if err != nil {
					return err
				}
				wopts.Attribution.Mode = m
			}
			switch backend {
			case "", "auto":
			case "fanotify":
				wopts.Backend = watch.BackendFanotify
			case "inotify":
				wopts.Backend = watch.BackendInotify
			default:
				return fmt.Errorf("--backend %q: want auto, fanotify or inotify", backend)
			}
			var out monitor.Sink = newWatchSink(e, asJSON)
			if sf.pubkey == "" && !jf.noEvidence {
				key, err := signing.Load(sp.key)
				if err != nil {
					return fmt.Errorf("load signing key: %w", err)
				}
				j, err := jf.open(c.Context(), sp, key, pol)
				if err != nil {
					return err
				}
				// Sign checkpoints while changes arrive, not only at exit: a
				// watch runs for months.
				go j.cpr.Run(c.Context())
				jw := newJournaledWatch(c.Context(), out, j)
				out = jw
				defer func() {
					if err := errors.Join(jw.close(), j.close(c.Context())); err != nil && retErr == nil {
						retErr = err
					}
				}()
			}
			// Change control, when the policy has people, roles, pipelines
			// or SoD sections: every change gets a verdict from its who-data.
			if !pol.ChangeControl.Empty() {
				ctl, err := control.Open(c.Context(), storeDSN(sp, jf.store), pol, control.Options{})
				if err != nil {
					return err
				}
				defer ctl.Close()
				var rec func(string, any) error
				if jw, ok := out.(*journaledWatch); ok {
					rec = func(kind string, body any) error { return jw.enqueue(kind, time.Now(), body) }
				}
				out = newControlledWatch(c.Context(), out, ctl, baselineAcceptor{sp: sp, stderr: e.stderr}, rec)
			}
			return monitor.Run(c.Context(), monitor.Config{
				Baseline:  ix,
				Policy:    pol,
				Watch:     wopts,
				FullCheck: fullEvery,
				Started: func(b watch.Source) {
					if !asJSON {
						fmt.Fprintf(e.stderr, "vigil: watching %s with %s\n", joinRoots(pol.Roots()), b)
					}
				},
			}, out)
		},
	}
	sf.register(c)
	sf.registerPubkey(c)
	jf.register(c)
	c.Flags().StringVar(&policyFile, "policy", "", "watch with this policy instead of the one stored in the baseline")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON Lines: the change record plus time, source and who (docs/watch.md)")
	c.Flags().StringVar(&backend, "backend", "auto", "event source: auto, fanotify or inotify")
	c.Flags().BoolVar(&noWho, "no-who", false, "do not collect who-data (no audit rules)")
	c.Flags().StringVar(&whoMode, "who-mode", "", "what audit records for who-data: process (exec/fork only; default with fanotify) or syscall (every write, costlier)")
	c.Flags().DurationVar(&fullEvery, "full-check", monitor.DefaultFullCheck, "period of full checks backing up the watcher (negative: never)")
	return c
}

// watchSink prints watch output: JSON Lines, or one readable line per
// change. Lines are written whole and flushed at once: a reader tailing the
// output must see each change as it happens.
type watchSink struct {
	mu     sync.Mutex
	w      io.Writer
	asJSON bool
	color  bool
}

func newWatchSink(e *env, asJSON bool) *watchSink {
	return &watchSink{w: e.stdout, asJSON: asJSON, color: e.stdoutTTY}
}

func (s *watchSink) line(v any, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.asJSON {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = s.w.Write(append(b, '\n'))
		return err
	}
	_, err := io.WriteString(s.w, text+"\n")
	return err
}

func (s *watchSink) Change(o *record.Observed, c *fim.Change) error {
	what := o.Type
	if len(o.Changed) > 0 {
		what += " " + strings.Join(o.Changed, ",")
	}
	return s.line(o, fmt.Sprintf("%s %-8s %s  %s  [%s]", o.Time, what, displayPath(c.Path), whoText(o.Who), o.Source))
}

func (s *watchSink) Problem(path string, err error, source string) error {
	p := record.NewProblem(path, err)
	return s.line(struct {
		Time   string `json:"time"`
		Type   string `json:"type"`
		Source string `json:"source"`
		record.Problem
	}{time.Now().UTC().Format(time.RFC3339Nano), "problem", source, p},
		fmt.Sprintf("%s problem  %s: %v [%s]", time.Now().UTC().Format(time.RFC3339Nano), displayPath(path), err, source))
}

func (s *watchSink) Health(t time.Time, h *watch.Health) error {
	ts := t.UTC().Format(time.RFC3339Nano)
	return s.line(record.HealthRecord{Time: ts, Type: "health", Health: h},
		fmt.Sprintf("%s health   %s: %s", ts, h.Kind, h.Message))
}

func whoText(w *whodata.Who) string {
	if w == nil {
		return "who: unknown"
	}
	if w.Attribution == whodata.AttributionUnavailable {
		return "who: unknown (" + w.Reason + ")"
	}
	var parts []string
	if w.User != "" {
		u := w.User
		if w.LoginUser != "" && w.LoginUser != w.User {
			u += " (login " + w.LoginUser + ")"
		}
		parts = append(parts, u)
	}
	if w.Exe != "" {
		parts = append(parts, w.Exe)
	}
	if w.PID != 0 {
		parts = append(parts, fmt.Sprintf("pid %d", w.PID))
	}
	if w.ContainerID != "" {
		parts = append(parts, "container "+w.ContainerID[:min(12, len(w.ContainerID))])
	}
	return "by " + strings.Join(parts, ", ")
}
