package evidence

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
)

// ErrClosed is returned by appends on a closed Log.
var ErrClosed = errors.New("evidence log closed")

// Defaults for LogOptions. A batch of 4096 records commits in a few
// milliseconds on SQLite, which keeps Append latency low while amortising
// the fsync over thousands of records (the kernel notes measured ~60k
// rows/s with 10k-row transactions); 1024 queued requests bound the memory
// a burst can pin before callers feel backpressure.
const (
	DefaultMaxBatch  = 4096
	DefaultQueueSize = 1024
	// maxConflictRetries bounds how often one batch is re-encoded after
	// another writer (another hub on the same PostgreSQL) moved the head.
	maxConflictRetries = 8
)

// LogOptions tune a Log. The zero value is good.
type LogOptions struct {
	// MaxBatch is the most records committed in one transaction.
	MaxBatch int
	// QueueSize is how many append requests may wait for the writer before
	// Append blocks (backpressure).
	QueueSize int
}

// LogStore is what a Log needs from its store.
type LogStore interface {
	LeafStore
	NodeReader
}

// Log appends records to the evidence log. All writes go through one writer
// goroutine that commits whatever is queued as one transaction (group
// commit): while one batch commits, the next gathers, so a busy log writes
// large batches and an idle one commits a lone record at once, without an
// age timer adding latency. Append returns only after its batch committed
// durably. A Log is safe for concurrent use.
type Log struct {
	store    LogStore
	maxBatch int
	reqs     chan *appendRequest

	mu     sync.RWMutex // guards closed and sends on reqs
	closed bool
	done   chan struct{} // closed when the writer exits

	// Owned by the writer goroutine.
	size uint64
	rng  *compact.Range
}

type appendRequest struct {
	recs  []Record
	first uint64
	err   error
	done  chan struct{}
}

// OpenLog loads the log head from store and starts the writer. Close stops
// it.
func OpenLog(ctx context.Context, store LogStore, opts LogOptions) (*Log, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	l := &Log{
		store:    store,
		maxBatch: opts.MaxBatch,
		reqs:     make(chan *appendRequest, opts.QueueSize),
		done:     make(chan struct{}),
	}
	if err := l.reload(ctx); err != nil {
		return nil, err
	}
	go l.writer()
	return l, nil
}

// reload reads the committed size and tree border from the store.
func (l *Log) reload(ctx context.Context) error {
	size, err := l.store.LogSize(ctx)
	if err != nil {
		return fmt.Errorf("read log size: %w", err)
	}
	rng, err := loadRange(ctx, l.store, size)
	if err != nil {
		return err
	}
	l.size, l.rng = size, rng
	return nil
}

// Append appends one record and returns its index once it is durable.
func (l *Log) Append(ctx context.Context, r Record) (uint64, error) {
	return l.AppendBatch(ctx, []Record{r})
}

// AppendBatch appends records in order, all in one transaction, and returns
// the index of the first once they are durable. The records are validated
// before queueing so one bad record fails only its caller. If ctx ends after
// the batch was queued, the records may still be committed.
func (l *Log) AppendBatch(ctx context.Context, recs []Record) (uint64, error) {
	if len(recs) == 0 {
		return 0, fmt.Errorf("append: %w: empty batch", ErrInvalidRecord)
	}
	canon := make([]Record, len(recs))
	for i, r := range recs {
		c, err := r.canonical()
		if err != nil {
			return 0, fmt.Errorf("append record %d: %w", i, err)
		}
		canon[i] = c
	}
	req := &appendRequest{recs: canon, done: make(chan struct{})}
	if err := l.enqueue(ctx, req); err != nil {
		return 0, err
	}
	select {
	case <-req.done:
		return req.first, req.err
	case <-ctx.Done():
		return 0, fmt.Errorf("append: %w", ctx.Err())
	}
}

func (l *Log) enqueue(ctx context.Context, req *appendRequest) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append: %w", err) // do not queue work nobody waits for
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	select {
	case l.reqs <- req:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("append: %w", ctx.Err())
	}
}

// Close stops accepting appends, commits what is queued and stops the
// writer.
func (l *Log) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.reqs)
	}
	l.mu.Unlock()
	<-l.done
	return nil
}

// writer is the only goroutine that writes leaves.
func (l *Log) writer() {
	defer close(l.done)
	for req := range l.reqs {
		batch := []*appendRequest{req}
		n := len(req.recs)
	gather:
		for n < l.maxBatch {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
				n += len(r.recs)
			default:
				break gather
			}
		}
		first, err := l.commit(batch, n)
		for _, r := range batch {
			r.first, r.err = first, err
			first += uint64(len(r.recs))
			close(r.done)
		}
	}
}

// commit writes one batch of n records and returns the index of the first.
func (l *Log) commit(batch []*appendRequest, n int) (uint64, error) {
	// The writer outlives any caller's context: a batch mixes requests of
	// many callers and must not fail because one of them gave up.
	ctx := context.Background()
	var err error
	for attempt := 0; attempt <= maxConflictRetries; attempt++ {
		var rng *compact.Range
		var leaves []StoredLeaf
		var nodes []Node
		rng, leaves, nodes, err = l.build(batch, n)
		if err != nil {
			return 0, err
		}
		err = l.store.AppendLeaves(ctx, l.size, leaves, nodes)
		if err == nil {
			first := l.size
			l.size, l.rng = rng.End(), rng
			return first, nil
		}
		if !errors.Is(err, ErrConflict) {
			return 0, fmt.Errorf("append %d records at %d: %w", n, l.size, err)
		}
		if rerr := l.reload(ctx); rerr != nil {
			return 0, fmt.Errorf("append after conflict: %w", rerr)
		}
	}
	return 0, fmt.Errorf("append %d records: gave up after %d conflicts: %w", n, maxConflictRetries, err)
}

// build encodes the batch at the current head and computes the interior
// nodes it completes, without touching the Log's state.
func (l *Log) build(batch []*appendRequest, n int) (*compact.Range, []StoredLeaf, []Node, error) {
	hashes := append([][]byte(nil), l.rng.Hashes()...)
	rng, err := rangeFactory.NewRange(0, l.size, hashes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("copy tree border: %w", err)
	}
	leaves := make([]StoredLeaf, 0, n)
	nodes := make([]Node, 0, n)
	visit := func(id compact.NodeID, h []byte) {
		if id.Level > 0 {
			nodes = append(nodes, Node{ID: id, Hash: h})
		}
	}
	// One backing array for all leaves of the batch: fewer allocations on
	// the hot path.
	var buf []byte
	idx := l.size
	for _, req := range batch {
		for _, r := range req.recs {
			start := len(buf)
			buf = appendLeaf(buf, idx, r)
			leaf := buf[start:len(buf):len(buf)]
			h := LeafHash(leaf)
			if err := rng.Append(h, visit); err != nil {
				return nil, nil, nil, fmt.Errorf("extend tree: %w", err)
			}
			leaves = append(leaves, StoredLeaf{Index: idx, Kind: r.Kind, TimeNS: r.Time.UnixNano(), Leaf: leaf, Hash: h})
			idx++
		}
	}
	return rng, fixLeafSlices(leaves, buf), nodes, nil
}

// fixLeafSlices re-points each leaf into the final buffer: appends to buf may
// have moved it while the batch was being encoded.
func fixLeafSlices(leaves []StoredLeaf, buf []byte) []StoredLeaf {
	off := 0
	for i := range leaves {
		n := len(leaves[i].Leaf)
		leaves[i].Leaf = buf[off : off+n : off+n]
		off += n
	}
	return leaves
}
