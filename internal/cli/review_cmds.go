package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/control"
	"github.com/vigilfim/vigil/internal/evidence"
)

func newReviewCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "review",
		Short: "List and decide unauthorized changes waiting for review",
		Long: `Every unauthorized change opens a review item. A reviewer who is not the person
who made the change accepts it (it is taken into the baseline) or rejects it
(it must be undone or investigated), with a note saying why.`,
	}
	c.AddCommand(newReviewListCmd(e), newReviewDecideCmd(e, true), newReviewDecideCmd(e, false))
	return c
}

func newReviewListCmd(e *env) *cobra.Command {
	var f ccFlags
	var all, asJSON bool
	c := &cobra.Command{
		Use:   "list [--all] [--json]",
		Short: "List open review items (every item with --all)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctl, _, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			state := change.ReviewOpen
			if all {
				state = ""
			}
			items, err := ctl.Store().Reviews(c.Context(), state)
			if err != nil {
				return err
			}
			if asJSON {
				if items == nil {
					items = []change.ReviewItem{}
				}
				return writeJSON(e, items)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "ID\tSTATE\tOPENED\tHOST\tPATH\tBY\tVERDICT\n")
			for _, it := range items {
				who := it.Actor
				if who == "" {
					who = it.ActorAccount
				}
				if who == "" {
					who = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.ID, it.State, it.Opened.Format(time.RFC3339), it.Host,
					displayPath(it.Path), who, control.Describe(it.Verdict))
			}
			return tw.Flush()
		},
	}
	f.register(c)
	c.Flags().BoolVar(&all, "all", false, "include decided items")
	c.Flags().BoolVar(&asJSON, "json", false, "print the items as a JSON array")
	return c
}

func newReviewDecideCmd(e *env, accept bool) *cobra.Command {
	var f ccFlags
	var note string
	op, short := "reject", "Reject an unauthorized change (to be undone or investigated)"
	if accept {
		op, short = "accept", "Accept an unauthorized change and take it into the baseline"
	}
	c := &cobra.Command{
		Use:   op + " ID --note TEXT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctl, sp, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			var acc control.Acceptor
			if accept {
				acc = baselineAcceptor{sp: sp, stderr: e.stderr}
			}
			it, err := ctl.Decide(c.Context(), args[0], accept, note, acc)
			if err != nil {
				return err
			}
			if err := recordAction(c.Context(), &f, ctl.Policy(), evidence.KindReview, map[string]any{"review": it}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "review %s %s by %s\n", it.ID, it.State, it.Reviewer)
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&note, "note", "", "why (required)")
	return c
}
