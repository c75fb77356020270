// Package cli holds Vigil's cobra commands, their output printers and the
// exit-code table. Commands only parse flags and wire packages together.
package cli

import (
	"context"
	"io"
)

// Main runs the vigil command line with args and returns the exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	_ = ctx
	_ = args
	_ = stdin
	_ = stdout
	_ = stderr
	return 0
}
