package scan

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vigilfim/vigil/internal/fim"
)

// oldChunk carries baseline entries from the reader goroutine in batches,
// so that decoding the baseline overlaps the walk at one channel
// operation per batch rather than per entry.
type oldChunk struct {
	entries []*fim.Entry
	tags    []uint32
	err     error // set on the last chunk when reading failed
}

// readOld feeds old's entries to ch and closes it at io.EOF.
func readOld(ctx context.Context, old Old, ch chan<- oldChunk) error {
	defer close(ch)
	c := oldChunk{}
	send := func() error {
		select {
		case ch <- c:
			c = oldChunk{}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		e, tag, err := old.Next()
		if err == io.EOF {
			if len(c.entries) > 0 {
				return send()
			}
			return nil
		}
		if err != nil {
			c.err = fmt.Errorf("read baseline: %w", err)
			if serr := send(); serr != nil {
				return serr
			}
			return c.err
		}
		if e == nil {
			c.err = errors.New("read baseline: nil entry")
			_ = send()
			return c.err
		}
		c.entries = append(c.entries, e)
		c.tags = append(c.tags, tag)
		if len(c.entries) == oldBatch {
			if err := send(); err != nil {
				return err
			}
		}
	}
}

// oldCursor is the walker's view of the baseline: peek at the next entry,
// take it, and check the order as it goes.
type oldCursor struct {
	ctx   context.Context
	ch    <-chan oldChunk
	cur   oldChunk
	i     int
	done  bool
	last  string
	count int64
}

// peek returns the next baseline entry, or nil at the end.
func (c *oldCursor) peek() (*fim.Entry, error) {
	for c.i >= len(c.cur.entries) {
		if c.done {
			return nil, nil
		}
		select {
		case ch, ok := <-c.ch:
			if !ok {
				c.done = true
				return nil, nil
			}
			if ch.err != nil {
				c.done = true
				return nil, ch.err
			}
			c.cur, c.i = ch, 0
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		}
		if len(c.cur.entries) > 0 {
			e := c.cur.entries[0]
			if c.count > 0 && fim.ComparePaths(c.last, e.Path) >= 0 {
				return nil, fmt.Errorf("%w: %q after %q", ErrOldOrder, e.Path, c.last)
			}
		}
	}
	e := c.cur.entries[c.i]
	return e, nil
}

// take consumes the entry peek returned.
func (c *oldCursor) take() (*fim.Entry, uint32, error) {
	e, tag := c.cur.entries[c.i], c.cur.tags[c.i]
	c.cur.entries[c.i] = nil // let it go once delivered
	c.i++
	c.last = e.Path
	c.count++
	if c.i < len(c.cur.entries) {
		if next := c.cur.entries[c.i]; fim.ComparePaths(e.Path, next.Path) >= 0 {
			return nil, 0, fmt.Errorf("%w: %q after %q", ErrOldOrder, next.Path, e.Path)
		}
	}
	return e, tag, nil
}
