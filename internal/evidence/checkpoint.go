package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/vigilfim/vigil/internal/atomicfile"
	"golang.org/x/mod/sumdb/note"
)

// MaxCheckpointLen bounds the signed checkpoint notes this package reads:
// a checkpoint is three short lines and a few signatures.
const MaxCheckpointLen = 64 << 10

// ErrBadCheckpoint is wrapped by OpenCheckpoint errors: a bad signature, a
// wrong origin or a malformed body.
var ErrBadCheckpoint = errors.New("bad checkpoint")

// Checkpoint is a verified, parsed checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// Note is the signed note exactly as signed (C2SP tlog-checkpoint).
	Note []byte
}

// SignCheckpoint returns the signed note committing to a tree of size
// leaves with the given root:
//
//	<origin>\n<size>\n<base64 root>\n\n— <key name> <base64 signature>\n
func SignCheckpoint(signer note.Signer, origin string, size uint64, root []byte) ([]byte, error) {
	body := log.Checkpoint{Origin: origin, Size: size, Hash: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return signed, nil
}

// OpenCheckpoint verifies the signature on a checkpoint note with v before
// parsing it, then checks the origin. An empty origin means v.Name().
func OpenCheckpoint(signed []byte, origin string, v note.Verifier) (Checkpoint, error) {
	if origin == "" {
		origin = v.Name()
	}
	if len(signed) > MaxCheckpointLen {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes, longer than %d", ErrBadCheckpoint, len(signed), MaxCheckpointLen)
	}
	cp, extra, _, err := log.ParseCheckpoint(signed, origin, v)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	if len(extra) != 0 {
		return Checkpoint{}, fmt.Errorf("%w: unexpected extension lines", ErrBadCheckpoint)
	}
	if len(cp.Hash) != 32 {
		return Checkpoint{}, fmt.Errorf("%w: root hash is %d bytes, want 32", ErrBadCheckpoint, len(cp.Hash))
	}
	return Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Note: append([]byte(nil), signed...)}, nil
}

// ReadCheckpointFile reads and verifies the checkpoint at path. A missing
// file is returned as an error wrapping fs.ErrNotExist.
func ReadCheckpointFile(path, origin string, v note.Verifier) (Checkpoint, error) {
	b, err := readFileLimited(path, MaxCheckpointLen)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, err := OpenCheckpoint(b, origin, v)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint file %s: %w", path, err)
	}
	return cp, nil
}

// WitnessPath returns where a witness directory keeps the checkpoint of
// the log named origin. Several hosts may share one witness directory, so
// the file is named after the origin, with every byte outside
// [A-Za-z0-9.-] replaced by '_'.
func WitnessPath(dir, origin string) string {
	var b strings.Builder
	for i := 0; i < len(origin); i++ {
		c := origin[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	return filepath.Join(dir, b.String()+".checkpoint")
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read checkpoint %s: longer than %d bytes", path, limit)
	}
	return b, nil
}

// Clock is the time source of a Checkpointer; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// NewTicker returns a channel that delivers a tick every d and a
	// function that stops it.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTicker wraps time.NewTicker.
func (SystemClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// DefaultCheckpointInterval is how often a Checkpointer signs while records
// arrive. Ten seconds bounds what an attacker could rewrite unnoticed (the
// records since the last checkpoint copied out of the database) to a few
// seconds of events, at the cost of one signature and one small file write.
const DefaultCheckpointInterval = 10 * time.Second

// CheckpointerStore is what a Checkpointer needs from a store.
type CheckpointerStore interface {
	LeafStore
	NodeReader
	CheckpointStore
}

// CheckpointerOptions configure a Checkpointer.
type CheckpointerOptions struct {
	// Origin names the log in its checkpoints; empty means the signer's
	// key name (the C2SP convention).
	Origin string
	// Interval between checkpoints while the log grows; zero means
	// DefaultCheckpointInterval.
	Interval time.Duration
	// Clock defaults to SystemClock.
	Clock Clock
	// File, if set, receives a copy of every new checkpoint (written
	// atomically), so that a database rolled back to an old copy disagrees
	// with it.
	File string
	// WitnessDirs each receive a copy at WitnessPath(dir, origin). A witness
	// copy only moves forward: a checkpoint that is smaller than, or not
	// consistent with, the one already there is refused.
	WitnessDirs []string
	// OnCheckpoint, if set, is called after each checkpoint Run writes
	// (and after each failure with a zero Checkpoint and the error), from
	// Run's goroutine.
	OnCheckpoint func(Checkpoint, error)
}

// Checkpointer signs checkpoints of the log in a store.
type Checkpointer struct {
	store    CheckpointerStore
	signer   note.Signer
	verifier note.Verifier
	opts     CheckpointerOptions
}

// NewCheckpointer returns a Checkpointer signing with signer. verifier is
// the signer's public half: it checks checkpoints read back from the store
// and the witness directories before they are trusted.
func NewCheckpointer(store CheckpointerStore, signer note.Signer, verifier note.Verifier, opts CheckpointerOptions) *Checkpointer {
	if opts.Origin == "" {
		opts.Origin = signer.Name()
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultCheckpointInterval
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	return &Checkpointer{store: store, signer: signer, verifier: verifier, opts: opts}
}

// Run signs a checkpoint every interval in which the log grew, until ctx
// ends. Failures go to OnCheckpoint and do not stop the loop: the next tick
// tries again, and Verify reports a gap that stays.
func (c *Checkpointer) Run(ctx context.Context) error {
	tick, stop := c.opts.Clock.NewTicker(c.opts.Interval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			cp, grew, err := c.checkpoint(ctx, false)
			if ctx.Err() != nil {
				return ctx.Err() // a failure caused by the shutdown is not news
			}
			if c.opts.OnCheckpoint != nil && (grew || err != nil) {
				c.opts.OnCheckpoint(cp, err)
			}
		}
	}
}

// Checkpoint signs a checkpoint of the log as it is now (unless the latest
// stored checkpoint already covers it), stores it, and writes it to the
// file and witness directories. It returns the checkpoint.
func (c *Checkpointer) Checkpoint(ctx context.Context) (Checkpoint, error) {
	cp, _, err := c.checkpoint(ctx, true)
	return cp, err
}

// checkpoint signs when the log grew past the latest checkpoint. With
// always, an unchanged log still has its latest checkpoint copied out.
func (c *Checkpointer) checkpoint(ctx context.Context, always bool) (Checkpoint, bool, error) {
	size, err := c.store.LogSize(ctx)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint: read log size: %w", err)
	}
	latest, err := c.store.LatestCheckpoint(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		if size == 0 && !always {
			return Checkpoint{}, false, nil // nothing logged yet
		}
	case err != nil:
		return Checkpoint{}, false, fmt.Errorf("checkpoint: %w", err)
	case latest.Size == size:
		if !always {
			return Checkpoint{}, false, nil
		}
		cp, err := OpenCheckpoint(latest.Note, c.opts.Origin, c.verifier)
		if err != nil {
			return Checkpoint{}, false, fmt.Errorf("checkpoint: latest stored: %w", err)
		}
		return cp, false, c.publish(ctx, cp)
	}
	root, err := RootAt(ctx, c.store, size)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint: %w", err)
	}
	signed, err := SignCheckpoint(c.signer, c.opts.Origin, size, root)
	if err != nil {
		return Checkpoint{}, false, err
	}
	if err := c.store.AddCheckpoint(ctx, size, signed, c.opts.Clock.Now()); err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint: store: %w", err)
	}
	cp := Checkpoint{Origin: c.opts.Origin, Size: size, Root: root, Note: signed}
	// The database first, then the file: a crash in between leaves the file
	// behind the database, which is harmless, never ahead of it, which
	// would look like a rollback.
	return cp, true, c.publish(ctx, cp)
}

// publish writes cp to the checkpoint file and the witness directories.
func (c *Checkpointer) publish(ctx context.Context, cp Checkpoint) error {
	if c.opts.File != "" {
		if err := atomicfile.WriteFile(c.opts.File, cp.Note, 0o644); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	for _, dir := range c.opts.WitnessDirs {
		if err := CopyToWitness(ctx, c.store, cp, dir, c.verifier); err != nil {
			return err
		}
	}
	return nil
}

// ErrWitnessRefused is wrapped when a witness directory already holds a
// checkpoint that the new one does not extend: the log was rolled back or
// forked since the witness last saw it.
var ErrWitnessRefused = errors.New("witness refused checkpoint")

// CopyToWitness writes cp into witness directory dir unless the checkpoint
// already there is larger or not consistent with cp (checked with a
// consistency proof from nr, which must hold the log cp belongs to).
func CopyToWitness(ctx context.Context, nr NodeReader, cp Checkpoint, dir string, v note.Verifier) error {
	path := WitnessPath(dir, cp.Origin)
	old, err := ReadCheckpointFile(path, cp.Origin, v)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("witness %s: %w", dir, err)
	case old.Size > cp.Size:
		return fmt.Errorf("witness %s: %w: it holds size %d, new checkpoint is size %d (rollback)", dir, ErrWitnessRefused, old.Size, cp.Size)
	case old.Size == cp.Size && !bytes.Equal(old.Root, cp.Root):
		return fmt.Errorf("witness %s: %w: size %d with a different root (fork)", dir, ErrWitnessRefused, cp.Size)
	case old.Size > 0 && old.Size < cp.Size:
		p, err := ConsistencyProof(ctx, nr, old.Size, cp.Size)
		if err != nil {
			return fmt.Errorf("witness %s: %w", dir, err)
		}
		if err := VerifyConsistency(old.Size, cp.Size, p, old.Root, cp.Root); err != nil {
			return fmt.Errorf("witness %s: %w: size %d is not consistent with held size %d: %v", dir, ErrWitnessRefused, cp.Size, old.Size, err)
		}
	}
	if err := atomicfile.WriteFile(path, cp.Note, 0o644); err != nil {
		return fmt.Errorf("witness %s: %w", dir, err)
	}
	return nil
}
