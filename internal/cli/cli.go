// Package cli holds Vigil's cobra commands, their output printers and the
// exit-code table. Commands parse flags and wire packages together; the
// work itself lives in the packages they call.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit statuses. Scripts and the tests of other tools depend on them:
// 0 and 1 are the only "the check ran to completion" answers; anything
// from 2 up means the answer is not trustworthy.
const (
	ExitOK         = 0 // no differences
	ExitChanges    = 1 // differences found
	ExitError      = 2 // could not run: bad input, missing or tampered baseline, I/O failure
	ExitIncomplete = 3 // ran, but some entries could not be examined (listed on stderr)
	ExitTampered   = 4 // evidence verification found tampering
	ExitRevoked    = 5 // vigil agent: the hub revoked this agent; restarting cannot help
)

// exitError carries an exit status out of a command. Commands return it
// for outcomes that are not failures of the tool (differences found).
type exitError struct {
	code int
	err  error // nil: nothing more to print
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// env is what commands need from the outside world; tests replace it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// stdoutTTY and stderrTTY decide colour and progress output.
	stdoutTTY, stderrTTY bool
	now                  func() time.Time
}

// Main runs the vigil command line with args and returns the exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	e.stdoutTTY = isTerminal(stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	e.stderrTTY = isTerminal(stderr) && os.Getenv("TERM") != "dumb"
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "vigil: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "vigil: %v\n", err)
	return ExitError
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "vigil",
		Short: "File integrity monitoring and change control",
		Long: `Vigil records signed baselines of file trees, reports every deviation from
them, watches changes as they happen with who made them, and reconciles each
change with approved change requests.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// A flag error is the user's mistake: exit 2 with the message, as for
	// any other error, but also say where to look.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	root.AddCommand(
		newBaselineCmd(e),
		newCheckCmd(e),
		newAcceptCmd(e),
		newShowCmd(e),
		newWatchCmd(e),
		newEvidenceCmd(e),
		newPolicyCmd(e),
		newKeyCmd(e),
		newChangeCmd(e),
		newManifestCmd(e),
		newReviewCmd(e),
		newReportCmd(e),
	)
	root.AddCommand(newServerCmd(e))
	root.AddCommand(newAgentCmd(e))
	root.AddCommand(newStatusCmd(e))
	return root
}
