//go:build !linux

package fanotify

import (
	"context"
	"fmt"

	"github.com/vigilfim/vigil/internal/watch/fsevent"
)

// Backend is unavailable outside Linux; Open always fails.
type Backend struct{}

// Open reports that fanotify is Linux's, so the watcher falls back.
func Open([]string, Options) (*Backend, error) {
	return nil, fmt.Errorf("%w: not linux", ErrUnsupported)
}

// Run is never reached: Open fails.
func (*Backend) Run(context.Context, chan<- fsevent.Raw) error { return ErrUnsupported }

// Stats returns zero counts.
func (*Backend) Stats() Stats { return Stats{} }

// Close does nothing.
func (*Backend) Close() error { return nil }
