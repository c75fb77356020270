// Command vigil is Vigil's single binary: integrity checks, real-time watch,
// change control and evidence. It only wires; the work is in internal/.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigilfim/vigil/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
