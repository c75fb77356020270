package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/atomicfile"
	"github.com/vigilfim/vigil/internal/baseline"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/integrity"
	"github.com/vigilfim/vigil/internal/monitor"
	"github.com/vigilfim/vigil/internal/policy"
)

// agentVersion is reported in heartbeats.
const agentVersion = "vigil-agent/1"

func newAgentCmd(e *env) *cobra.Command {
	var dir, server, token string
	var fullEvery time.Duration
	c := &cobra.Command{
		Use:   "agent [--server URL --enroll TOKEN] [--dir DIR]",
		Short: "Run the agent that reports this host to a hub",
		Long: `Enrols this host with a hub (once, with a one-time token an admin created),
then runs continuously: pulls the hub's signed policy, builds the host's
baseline on first run, watches it, and streams every change (with who made
it) and every health event to the hub over mutual TLS. Records wait in a
durable local spool while the hub is unreachable and arrive in order when it
returns. See docs/fleet.md.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := fleetDir("agent")
				if err != nil {
					return err
				}
				dir = d
			}
			if _, err := agent.LoadState(dir); errors.Is(err, agent.ErrNotEnrolled) {
				if server == "" || token == "" {
					return errors.New("not enrolled: run with --server URL --enroll TOKEN")
				}
				host, _ := os.Hostname()
				st, err := agent.Enroll(c.Context(), dir, server, token, host)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "vigil: enrolled as agent %s (group %s)\n", st.AgentID, st.Group)
			} else if err != nil {
				return err
			} else if token != "" {
				fmt.Fprintf(e.stderr, "vigil: already enrolled; ignoring --enroll\n")
			}
			a, err := agent.Open(c.Context(), agent.Config{
				Dir: dir, Version: agentVersion,
				Watch: agentWatch(dir, fullEvery),
				Log:   slog.New(slog.NewTextHandler(e.stderr, nil)),
			})
			if err != nil {
				return err
			}
			defer a.Close()
			err = a.Run(c.Context())
			if errors.Is(err, fleet.ErrRevoked) {
				// Its own status, so that the service manager does not
				// restart an agent the hub will only refuse
				// (RestartPreventExitStatus in the unit).
				return &exitError{code: ExitRevoked, err: err}
			}
			return err
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "agent state directory (default /var/lib/vigil/agent for root, the XDG state directory otherwise)")
	c.Flags().StringVar(&server, "server", "", "hub URL, e.g. https://hub.example:8443 (enrolment only)")
	c.Flags().StringVar(&token, "enroll", "", "one-time enrolment token from the hub (enrolment only)")
	c.Flags().DurationVar(&fullEvery, "full-check", monitor.DefaultFullCheck, "period of full checks backing up the watcher")
	c.AddCommand(newAgentInstallCmd(e))
	return c
}

// agentWatch builds the host's baseline with the hub's policy on first
// run (in the agent's directory, signed with a host key kept there), then
// runs the watch with it. When the hub sends another policy (the group's
// policy changed, or the host moved to another group) the agent calls it
// again and the baseline is rebuilt with the new policy, which the
// baseline's header records.
func agentWatch(dir string, fullEvery time.Duration) func(context.Context, []byte, *agent.Sink) error {
	return func(ctx context.Context, polYAML []byte, sink *agent.Sink) error {
		pol, err := policy.Parse("hub policy", polYAML)
		if err != nil {
			return fmt.Errorf("parse hub policy: %w", err)
		}
		sp := statePaths{db: filepath.Join(dir, "baseline.vgl"), key: filepath.Join(dir, "vigil.key")}
		key, err := signingKey(sp)
		if err != nil {
			return err
		}
		build := func() error {
			if _, err := integrity.Build(ctx, sp.db, key.Signer(), pol, polYAML, baselineActor(), "agent: hub policy",
				integrity.Options{}, discardResults{}); err != nil {
				return fmt.Errorf("build baseline: %w", err)
			}
			return nil
		}
		if _, err := os.Stat(sp.db); errors.Is(err, os.ErrNotExist) {
			if err := build(); err != nil {
				return err
			}
		}
		ix, err := baseline.OpenIndex(sp.db, key.Verifier())
		if err != nil {
			return err
		}
		if !bytes.Equal(ix.Header().Policy, polYAML) {
			ix.Close()
			if err := build(); err != nil {
				return err
			}
			if ix, err = baseline.OpenIndex(sp.db, key.Verifier()); err != nil {
				return err
			}
		}
		defer ix.Close()
		return monitor.Run(ctx, monitor.Config{Baseline: ix, Policy: pol, FullCheck: fullEvery}, sink)
	}
}

// discardResults ignores what the first baseline scan finds: the baseline
// is the reference, and unreadable entries show up in every later check.
type discardResults struct{}

func (discardResults) Change(*fim.Change, *policy.Rule) error { return nil }
func (discardResults) Problem(string, error) error            { return nil }

// agentUnit is contrib/vigil-agent.service; a test keeps the two equal.
const agentUnit = `[Unit]
Description=Vigil agent: file integrity monitoring reporting to a Vigil hub
Documentation=https://github.com/vigilfim/vigil/blob/main/docs/fleet.md
Wants=network-online.target
After=network-online.target auditd.service

[Service]
Type=simple
ExecStart=/usr/local/bin/vigil agent --dir /var/lib/vigil/agent
Restart=always
RestartSec=5s
# 5: the hub revoked this agent; only a new enrolment helps.
RestartPreventExitStatus=5
# The watcher needs fanotify and the audit socket; the spool and the
# baseline live in the state directory.
StateDirectory=vigil/agent
StateDirectoryMode=0700
KillSignal=SIGTERM
TimeoutStopSec=30s
Nice=10
IOSchedulingClass=idle

[Install]
WantedBy=multi-user.target
`

func newAgentInstallCmd(e *env) *cobra.Command {
	var unitDir string
	c := &cobra.Command{
		Use:   "install [--unit-dir DIR]",
		Short: "Write the agent's systemd unit (vigil-agent.service)",
		Long: `Writes vigil-agent.service into the systemd unit directory. Enrol first
(vigil agent --server URL --enroll TOKEN, then stop it), then
"systemctl daemon-reload && systemctl enable --now vigil-agent".`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			path := filepath.Join(unitDir, "vigil-agent.service")
			if err := atomicfile.WriteFile(path, []byte(agentUnit), 0o644); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, path)
			fmt.Fprintln(e.stderr, "vigil: now run: systemctl daemon-reload && systemctl enable --now vigil-agent")
			return nil
		},
	}
	c.Flags().StringVar(&unitDir, "unit-dir", "/etc/systemd/system", "systemd unit directory")
	return c
}
