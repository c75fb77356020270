package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigilfim/vigil/internal/policy"
)

func newPolicyCmd(e *env) *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Validate and print policies"}
	c.AddCommand(&cobra.Command{
		Use:   "check FILE...",
		Short: "Validate policy files, printing every error as file:line:col",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			bad := 0
			for _, f := range args {
				if _, err := policy.Load(f); err != nil {
					bad++
					fmt.Fprintln(e.stderr, err)
					continue
				}
				fmt.Fprintf(e.stdout, "%s: ok\n", f)
			}
			if bad > 0 {
				return &exitError{code: ExitError, err: fmt.Errorf("%d of %d policy files are invalid", bad, len(args))}
			}
			return nil
		},
	})
	var def bool
	show := &cobra.Command{
		Use:   "show [FILE | --default]",
		Short: "Print a policy in canonical form, with every default resolved",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if def || len(args) == 0 {
				_, err := e.stdout.Write(policy.DefaultSource())
				return err
			}
			p, err := policy.Load(args[0])
			if err != nil {
				return err
			}
			b, err := policy.Marshal(p)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(b)
			return err
		},
	}
	show.Flags().BoolVar(&def, "default", false, "print the built-in Linux host policy")
	c.AddCommand(show)
	return c
}

func newKeyCmd(e *env) *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Manage the host signing key"}
	var sf stateFlags
	var out string
	export := &cobra.Command{
		Use:   "export --out FILE",
		Short: "Write the public verifier key, for verifying baselines and evidence elsewhere",
		RunE: func(c *cobra.Command, args []string) error {
			sp, err := sf.resolve()
			if err != nil {
				return err
			}
			k, err := signingKey(sp)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err := fmt.Fprintln(e.stdout, k.VerifierKey())
				return err
			}
			return k.WritePublic(out)
		},
	}
	sf.register(export)
	export.Flags().StringVar(&out, "out", "", "file to write (default: stdout)")
	c.AddCommand(export)
	return c
}
