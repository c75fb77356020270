package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilfim/vigil/internal/agent"
)

func newStatusCmd(e *env) *cobra.Command {
	var dir string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status [--dir DIR] [--json]",
		Short: "Show the agent's state, hub connection, spool depth and watcher health",
		Long: `Shows what the agent on this host last reported about itself (its status
file): whether it runs, whether it reaches the hub, how many records wait in
its spool, and the watcher's backend and health.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := fleetDir("agent")
				if err != nil {
					return err
				}
				dir = d
			}
			s, err := agent.ReadStatus(dir)
			if errors.Is(err, fs.ErrNotExist) {
				if _, serr := agent.LoadState(dir); errors.Is(serr, agent.ErrNotEnrolled) {
					return fmt.Errorf("no agent enrolled in %s", dir)
				}
				return fmt.Errorf("agent in %s has not run yet", dir)
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			hubState := "unreachable"
			if s.HubConnected {
				hubState = "connected"
			}
			ago := func(t time.Time) string {
				if t.IsZero() {
					return "never"
				}
				return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), e.now().Sub(t).Round(time.Second))
			}
			w := e.stdout
			fmt.Fprintf(w, "agent:          %s (%s, status updated %s)\n", s.AgentID, s.State, ago(s.Updated))
			fmt.Fprintf(w, "hub:            %s %s, last contact %s\n", s.Server, hubState, ago(s.LastContact))
			if s.LastError != "" {
				fmt.Fprintf(w, "last error:     %s\n", s.LastError)
			}
			fmt.Fprintf(w, "spool:          %d records waiting, %d delivered\n", s.SpoolDepth, s.Delivered)
			fmt.Fprintf(w, "watcher:        %s %s\n", orDash(s.WatcherBackend), orDash(s.WatcherHealth))
			fmt.Fprintf(w, "policy:         %s\n", orDash(s.PolicyVersion))
			fmt.Fprintf(w, "certificate:    expires %s\n", s.CertExpires.UTC().Format(time.RFC3339))
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "agent state directory")
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
