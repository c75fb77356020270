package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilfim/vigil/internal/hub"
)

// fleetDir is the default directory of the hub ("hub") or the agent
// ("agent"): under /var/lib/vigil for root, the XDG state directory
// otherwise, like every other Vigil state.
func fleetDir(name string) (string, error) {
	d, err := defaultStateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, name), nil
}

func newServerCmd(e *env) *cobra.Command {
	var dir, db, listen, policyFile string
	var hosts []string
	var refusalBurst int
	var refusalEvery time.Duration
	c := &cobra.Command{
		Use:   "server [--dir DIR] [--db postgres://...] [--listen ADDR]",
		Short: "Run the hub that agents report to",
		Long: `Runs the Vigil hub: an HTTPS API under /api/v1 that enrols agents, issues
their client certificates, serves them the signed policy and stores the change
records and health events they stream, each also appended to the evidence log.

The first start creates the hub's CA, signing key and database (SQLite under
--dir, or PostgreSQL with --db) and an admin user, printing the admin's API
token once on stdout. It listens on 127.0.0.1:8443 unless told otherwise.
See docs/fleet.md.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := fleetDir("hub")
				if err != nil {
					return err
				}
				dir = d
			}
			var pol []byte
			if policyFile != "" {
				b, err := os.ReadFile(policyFile)
				if err != nil {
					return fmt.Errorf("read policy: %w", err)
				}
				pol = b
			}
			h, err := hub.Open(c.Context(), hub.Options{
				Dir: dir, DB: db, Listen: listen, Hosts: hosts, Policy: pol,
				RefusalBurst: refusalBurst, RefusalEvery: refusalEvery,
				Log: slog.New(slog.NewTextHandler(e.stderr, nil)),
			})
			if err != nil {
				return err
			}
			if h.AdminToken != "" {
				fmt.Fprintf(e.stdout, "admin token (shown once, keep it safe): %s\n", h.AdminToken)
			}
			fmt.Fprintf(e.stderr, "vigil: hub listening on %s (state in %s, CA fingerprint %s)\n", h.URL(), dir, h.CA().Fingerprint())
			return h.Serve(c.Context())
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "hub state directory (default /var/lib/vigil/hub for root, the XDG state directory otherwise)")
	c.Flags().StringVar(&db, "db", "", "PostgreSQL URL (default: SQLite in --dir)")
	c.Flags().StringVar(&listen, "listen", hub.DefaultListen, "address to listen on")
	c.Flags().StringVar(&policyFile, "policy", "", "policy served to agents (default: the built-in policy)")
	c.Flags().StringSliceVar(&hosts, "host", nil, "extra DNS name or IP for the hub's certificate (repeatable)")
	c.Flags().IntVar(&refusalBurst, "refusal-burst", hub.DefaultRefusalBurst, "refused requests a source may make before it is throttled (docs/fleet.md)")
	c.Flags().DurationVar(&refusalEvery, "refusal-every", hub.DefaultRefusalEvery, "time a throttled source needs to earn back one refused request")
	return c
}
