package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newReportCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "report",
		Short: "Reports for auditors",
	}
	c.AddCommand(newReportChangesCmd(e))
	return c
}

// parseReportTime reads an RFC 3339 time or a date (midnight UTC).
func parseReportTime(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s: want RFC 3339 (2026-11-23T09:00:00Z) or a date (2026-11-23), got %q", flag, s)
	}
	return t, nil
}

func newReportChangesCmd(e *env) *cobra.Command {
	var f ccFlags
	var from, to, format string
	c := &cobra.Command{
		Use:   "changes --from TIME --to TIME [--format text|json|csv]",
		Short: "Every change in a period with who, verdict, reasons and authority; exceptions, SoD violations, rates",
		Long: `Reports the complete population of classified changes made in [--from, --to):
who made each, its verdict and reasons, and the change request, manifest or
package that authorized it; the exceptions (unauthorized changes) and how each
was dispositioned; segregation-of-duties violations by person; and the rate of
unauthorized changes by path (policy rule) and by team (role) per day. CSV
holds the population, one change per row.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return fmt.Errorf("give the period with --from and --to")
			}
			f0, err := parseReportTime("from", from)
			if err != nil {
				return err
			}
			t0, err := parseReportTime("to", to)
			if err != nil {
				return err
			}
			if !t0.After(f0) {
				return fmt.Errorf("--to must be after --from")
			}
			switch format {
			case "text", "json", "csv":
			default:
				return fmt.Errorf("--format: want text, json or csv, got %q", format)
			}
			ctl, _, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			rep, err := ctl.BuildReport(c.Context(), f0, t0)
			if err != nil {
				return err
			}
			switch format {
			case "json":
				return writeJSON(e, rep)
			case "csv":
				return rep.WriteCSV(e.stdout)
			}
			return rep.WriteText(e.stdout)
		},
	}
	f.register(c)
	c.Flags().StringVar(&from, "from", "", "start of the period (inclusive), RFC 3339 or YYYY-MM-DD")
	c.Flags().StringVar(&to, "to", "", "end of the period (exclusive), RFC 3339 or YYYY-MM-DD")
	c.Flags().StringVar(&format, "format", "text", "text, json or csv")
	return c
}
