package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// VerifyStore is what Verify reads.
type VerifyStore interface {
	LogSize(ctx context.Context) (uint64, error)
	NodeReader
	LeafScanner
	KindScanner
	CheckpointStore
}

// VerifyOptions say what to trust.
type VerifyOptions struct {
	// Verifier is the log's public key. Required.
	Verifier note.Verifier
	// Origin of the log's checkpoints; empty means Verifier.Name().
	Origin string
	// CheckpointFile is the copy of the latest checkpoint kept outside the
	// database (CheckpointerOptions.File); empty skips it.
	CheckpointFile string
	// WitnessDirs are witness directories to compare with.
	WitnessDirs []string
}

// VerifyReport summarises a verification.
type VerifyReport struct {
	// Size is the number of records in the log (its head).
	Size uint64
	// Pruned counts records whose payload a prune removed (their hashes
	// were still checked against the checkpoints).
	Pruned uint64
	// Checkpoints counts stored checkpoints verified; External counts
	// checkpoint copies outside the database compared with the log.
	Checkpoints uint64
	External    int
	// Latest is the largest checkpoint verified (stored or external), nil
	// when there is none.
	Latest *Checkpoint
	// Unsigned counts records after Latest: present and consistent, but no
	// signature covers them yet.
	Unsigned uint64
}

// checkpointPage is how many stored checkpoints Verify holds at a time.
const checkpointPage = 1024

// diagnoseWindow is how far past a misplaced record Verify looks for the
// record that belongs there, to tell a reorder from a deletion.
const diagnoseWindow = 4096

// Verify recomputes the log's Merkle tree from every stored record and
// checks it against every stored checkpoint, the consistency between
// successive checkpoints, the log head, and the checkpoint copies outside
// the database. It returns the first problem, in index order, as a
// *VerifyError (wrapping ErrTampered); other errors mean verification could
// not run. It reads the store once, in order, holding O(log n) hashes.
//
// Checkpoints signed after Verify starts are not considered, so verifying a
// live log does not report its newest appends as a problem.
func Verify(ctx context.Context, store VerifyStore, opts VerifyOptions) (VerifyReport, error) {
	if opts.Verifier == nil {
		return VerifyReport{}, errors.New("verify: no verifier key")
	}
	if opts.Origin == "" {
		opts.Origin = opts.Verifier.Name()
	}
	v := &verification{ctx: ctx, store: store, opts: opts, rng: rangeFactory.NewEmptyRange(0)}
	v.prevRng = rangeFactory.NewEmptyRange(0)
	err := v.run()
	return v.report, err
}

// target is a signed tree size that the recomputed tree must match.
type target struct {
	cp   Checkpoint
	seq  uint64 // stored checkpoint Seq; 0 for an external copy
	name string // "checkpoint #3" or "checkpoint file /x"
}

type verification struct {
	ctx    context.Context
	store  VerifyStore
	opts   VerifyOptions
	report VerifyReport

	head       uint64
	lastSeq    uint64 // only checkpoints up to this Seq are considered
	pruneBelow uint64 // payloads below this index may be pruned

	pos uint64         // next index to read
	rng *compact.Range // recomputed tree over [0, pos)

	// The last target that matched: the base for consistency checks and
	// for locating a rewritten record.
	prev    *target
	prevRng *compact.Range

	// Stored checkpoint paging.
	page     []StoredCheckpoint
	afterSeq uint64
	pageDone bool
	prevSize uint64 // size of the previous stored checkpoint

	externals []target
	missing   string // a missing external copy, reported at the end
}

// claimMismatch stops the leaf scan when a record claims another index.
type claimMismatch struct{ pos, claim uint64 }

func (c *claimMismatch) Error() string { return "record claims another index" }

func (v *verification) run() error {
	// Copies outside the database first: a live Checkpointer writes them
	// only after the checkpoint and its records are committed, so read in
	// this order they never run ahead of the head read below.
	if err := v.loadExternals(); err != nil {
		return err
	}
	latest, err := v.store.LatestCheckpoint(v.ctx)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return fmt.Errorf("verify: %w", err)
	default:
		v.lastSeq = latest.Seq
	}
	// Read the head after the latest checkpoint: a checkpoint never covers
	// more than was committed when it was signed, so every checkpoint up
	// to lastSeq is within this head unless records were removed.
	if v.head, err = v.store.LogSize(v.ctx); err != nil {
		return fmt.Errorf("verify: read log size: %w", err)
	}
	v.report.Size = v.head
	if v.lastSeq == 0 {
		v.missing = "" // no checkpoint yet: nothing can have been copied out
	}
	if err := v.loadPrunes(); err != nil {
		return err
	}
	var over []target // external copies beyond the head: a rollback
	for _, t := range v.externals {
		if t.cp.Size > v.head {
			over = append(over, t)
		}
	}
	for {
		t, ok, err := v.nextTarget()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := v.scanTo(t.cp.Size, t.name, t.seq); err != nil {
			return err
		}
		if err := v.check(t); err != nil {
			return err
		}
	}
	if v.pos > v.head {
		return recordProblem(v.head, ReasonTruncated, "the log head says %d records but checkpoints cover %d: the head was moved back", v.head, v.pos)
	}
	if err := v.scanTo(v.head, "the log head", 0); err != nil {
		return err
	}
	if len(over) > 0 {
		t := over[0]
		return recordProblem(v.head, ReasonRollback, "%s attests %d records but the database holds %d: the database was rolled back or its newest records deleted", t.name, t.cp.Size, v.head)
	}
	if v.missing != "" {
		return &VerifyError{Index: -1, Reason: ReasonExternalMissing, Detail: v.missing}
	}
	if v.report.Latest != nil {
		v.report.Unsigned = v.head - v.report.Latest.Size
	} else {
		v.report.Unsigned = v.head
	}
	return nil
}

// loadPrunes finds the prune records so that the main pass knows which
// missing payloads were removed by an explicit, logged operation.
func (v *verification) loadPrunes() error {
	err := v.store.ScanKind(v.ctx, KindPrune, func(l *StoredLeaf) error {
		if l.Leaf == nil || !bytes.Equal(LeafHash(l.Leaf), l.Hash) {
			return nil // reported in the main pass
		}
		idx, r, err := DecodeLeaf(l.Leaf)
		if err != nil || idx != l.Index || r.Kind != KindPrune {
			return nil
		}
		var body PruneBody
		if json.Unmarshal(r.Body, &body) != nil || body.BelowIndex > idx {
			return nil
		}
		v.pruneBelow = max(v.pruneBelow, body.BelowIndex)
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify: read prune records: %w", err)
	}
	return nil
}

// loadExternals reads and verifies the checkpoint copies outside the
// database.
func (v *verification) loadExternals() error {
	type source struct{ path, name string }
	var srcs []source
	if v.opts.CheckpointFile != "" {
		srcs = append(srcs, source{v.opts.CheckpointFile, "checkpoint file " + v.opts.CheckpointFile})
	}
	for _, d := range v.opts.WitnessDirs {
		p := WitnessPath(d, v.opts.Origin)
		srcs = append(srcs, source{p, "witness copy " + p})
	}
	for _, s := range srcs {
		cp, err := ReadCheckpointFile(s.path, v.opts.Origin, v.opts.Verifier)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if v.missing == "" {
				v.missing = s.name + " does not exist although the database has signed checkpoints"
			}
			continue
		case errors.Is(err, ErrBadCheckpoint):
			return &VerifyError{Index: -1, Reason: ReasonBadCheckpoint, Detail: fmt.Sprintf("%s: %s", s.name, checkpointCause(err))}
		case err != nil:
			return fmt.Errorf("verify: %w", err)
		}
		v.externals = append(v.externals, target{cp: cp, name: s.name})
		v.report.External++
	}
	sort.SliceStable(v.externals, func(i, j int) bool { return v.externals[i].cp.Size < v.externals[j].cp.Size })
	return nil
}

// nextTarget returns the next signed size to check, smallest first:
// stored checkpoints in Seq order merged with the external copies.
func (v *verification) nextTarget() (target, bool, error) {
	if len(v.page) == 0 && !v.pageDone {
		if err := v.loadPage(); err != nil {
			return target{}, false, err
		}
	}
	var ext *target
	if len(v.externals) > 0 && v.externals[0].cp.Size <= v.head {
		ext = &v.externals[0]
	}
	if len(v.page) > 0 && (ext == nil || v.page[0].Size <= ext.cp.Size) {
		sc := v.page[0]
		v.page = v.page[1:]
		return v.openStored(sc)
	}
	if ext != nil {
		t := *ext
		v.externals = v.externals[1:]
		return t, true, nil
	}
	return target{}, false, nil
}

func (v *verification) loadPage() error {
	var got int
	err := v.store.ScanCheckpoints(v.ctx, v.afterSeq, checkpointPage, func(sc StoredCheckpoint) error {
		got++
		v.afterSeq = sc.Seq
		if sc.Seq <= v.lastSeq {
			sc.Note = append([]byte(nil), sc.Note...)
			v.page = append(v.page, sc)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify: read checkpoints: %w", err)
	}
	if got < checkpointPage || v.afterSeq >= v.lastSeq {
		v.pageDone = true
	}
	return nil
}

// openStored verifies a stored checkpoint's signature before using it.
func (v *verification) openStored(sc StoredCheckpoint) (target, bool, error) {
	cp, err := OpenCheckpoint(sc.Note, v.opts.Origin, v.opts.Verifier)
	if err != nil {
		return target{}, false, checkpointProblem(sc.Seq, ReasonBadCheckpoint, "%s", checkpointCause(err))
	}
	if cp.Size != sc.Size {
		return target{}, false, checkpointProblem(sc.Seq, ReasonBadCheckpoint, "stored size %d differs from the signed size %d", sc.Size, cp.Size)
	}
	if cp.Size < v.prevSize {
		return target{}, false, checkpointProblem(sc.Seq, ReasonCheckpointOrder, "size %d is smaller than the previous checkpoint's %d", cp.Size, v.prevSize)
	}
	v.prevSize = cp.Size
	v.report.Checkpoints++
	return target{cp: cp, seq: sc.Seq, name: fmt.Sprintf("checkpoint #%d", sc.Seq)}, true, nil
}

// scanTo reads records [pos, end) into the recomputed tree.
func (v *verification) scanTo(end uint64, what string, seq uint64) error {
	if end <= v.pos {
		return nil
	}
	err := v.store.ScanLeaves(v.ctx, v.pos, end, v.leaf)
	var cm *claimMismatch
	if errors.As(err, &cm) {
		return v.diagnose(cm.pos, cm.claim)
	}
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve
	}
	if err != nil {
		return fmt.Errorf("verify: read records: %w", err)
	}
	if v.pos < end {
		e := recordProblem(v.pos, ReasonTruncated, "%s accounts for %d records but only %d are stored", what, end, v.pos)
		e.Checkpoint = seq
		return e
	}
	return nil
}

// leaf checks one stored record at the expected position and adds its
// hash to the recomputed tree.
func (v *verification) leaf(l *StoredLeaf) error {
	p := v.pos
	if l.Index != p {
		return recordProblem(p, ReasonMissing, "record %d was deleted (the next stored record is %d)", p, l.Index)
	}
	if len(l.Hash) != 32 {
		return recordProblem(p, ReasonAltered, "stored leaf hash is %d bytes, want 32", len(l.Hash))
	}
	h := l.Hash
	if l.Leaf == nil {
		if p >= v.pruneBelow {
			return recordProblem(p, ReasonPayloadRemoved, "the payload is gone but no prune record covers index %d", p)
		}
		v.report.Pruned++
	} else {
		h = LeafHash(l.Leaf)
		if !bytes.Equal(h, l.Hash) {
			return recordProblem(p, ReasonAltered, "the record's content does not match its stored leaf hash")
		}
		claim, r, err := DecodeLeaf(l.Leaf)
		if err != nil {
			return recordProblem(p, ReasonMalformed, "%v", err)
		}
		if claim != p {
			return &claimMismatch{pos: p, claim: claim}
		}
		if r.Kind != l.Kind {
			return recordProblem(p, ReasonAltered, "the kind column says %q but the record says %q", l.Kind, r.Kind)
		}
		if ns := r.Time.UnixNano(); ns != l.TimeNS {
			return recordProblem(p, ReasonAltered, "the time column says %d but the record says %d", l.TimeNS, ns)
		}
	}
	if err := v.rng.Append(h, nil); err != nil {
		return fmt.Errorf("verify: extend tree: %w", err)
	}
	v.pos++
	return nil
}

// diagnose explains why position p holds the record for index claim.
func (v *verification) diagnose(p, claim uint64) error {
	if claim < p {
		return recordProblem(claim, ReasonInserted, "position %d holds record %d again: a record was inserted at or before index %d and later ones renumbered", p, claim, claim)
	}
	found := int64(-1)
	err := v.store.ScanLeaves(v.ctx, p+1, p+1+diagnoseWindow, func(l *StoredLeaf) error {
		if l.Leaf == nil {
			return nil
		}
		if c, _, err := DecodeLeaf(l.Leaf); err == nil && c == p {
			found = int64(l.Index)
			return errStopScan
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return fmt.Errorf("verify: read records: %w", err)
	}
	if found >= 0 {
		return recordProblem(p, ReasonReordered, "position %d holds record %d and record %d is at position %d", p, claim, p, found)
	}
	return recordProblem(p, ReasonMissing, "record %d was deleted and later records renumbered (position %d holds record %d)", p, p, claim)
}

var errStopScan = errors.New("stop scan")

// check compares the recomputed tree with a signed target and the stored
// tree's consistency proof from the previous target.
func (v *verification) check(t target) error {
	root := rootOf(v.rng)
	if !bytes.Equal(root, t.cp.Root) {
		return v.locate(t)
	}
	if v.prev != nil && v.prev.cp.Size < t.cp.Size && v.prev.cp.Size > 0 {
		p, err := ConsistencyProof(v.ctx, v.store, v.prev.cp.Size, t.cp.Size)
		if err == nil {
			err = VerifyConsistency(v.prev.cp.Size, t.cp.Size, p, v.prev.cp.Root, t.cp.Root)
		}
		if err != nil {
			return &VerifyError{Index: -1, Checkpoint: t.seq, Reason: ReasonInconsistent,
				Detail: fmt.Sprintf("the stored tree gives no valid consistency proof from %s (size %d) to %s (size %d), so the stored interior nodes were altered", v.prev.name, v.prev.cp.Size, t.name, t.cp.Size)}
		}
	}
	tt := t
	v.prev = &tt
	v.prevRng = cloneRange(v.rng)
	if v.report.Latest == nil || t.cp.Size >= v.report.Latest.Size {
		cp := t.cp
		v.report.Latest = &cp
	}
	return nil
}

// locate finds the first record after the last good target that is not
// the one signed by t. Every record passed its own checks, so content and
// leaf hash were rewritten together. It bisects on prefix size k: the
// recomputed prefix [0, k) is good if the stored tree proves it consistent
// with t's signed root. While the stored interior nodes are untouched that
// pins the record exactly; if they were rewritten too, the answer is the
// start of the range.
func (v *verification) locate(t target) error {
	lo, hi := v.prevRng.End(), t.cp.Size
	if lo == hi && v.prev != nil {
		return &VerifyError{Index: -1, Checkpoint: t.seq, Reason: ReasonFork,
			Detail: fmt.Sprintf("%s and %s both sign size %d with different roots", v.prev.name, t.name, t.cp.Size)}
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		good, err := v.goodPrefix(mid, t)
		if err != nil {
			return err
		}
		if good {
			lo = mid
		} else {
			hi = mid
		}
	}
	return &VerifyError{Index: int64(lo), Checkpoint: t.seq, Reason: ReasonRewritten,
		Detail: fmt.Sprintf("record %d is not the one %s (size %d) signed: its content and leaf hash were rewritten together", lo, t.name, t.cp.Size)}
}

func (v *verification) goodPrefix(k uint64, t target) (bool, error) {
	r := cloneRange(v.prevRng)
	err := v.store.ScanLeaves(v.ctx, r.End(), k, func(l *StoredLeaf) error {
		h := l.Hash
		if l.Leaf != nil {
			h = LeafHash(l.Leaf)
		}
		return r.Append(h, nil)
	})
	if err != nil {
		return false, fmt.Errorf("verify: read records: %w", err)
	}
	if r.End() != k {
		return false, nil
	}
	p, err := ConsistencyProof(v.ctx, v.store, k, t.cp.Size)
	if err != nil {
		return false, nil
	}
	return VerifyConsistency(k, t.cp.Size, p, rootOf(r), t.cp.Root) == nil, nil
}

func cloneRange(r *compact.Range) *compact.Range {
	c, err := rangeFactory.NewRange(r.Begin(), r.End(), append([][]byte(nil), r.Hashes()...))
	if err != nil {
		panic(fmt.Sprintf("evidence: clone range: %v", err))
	}
	return c
}

// checkpointCause returns what is wrong with a checkpoint, without the
// wrapping that names the file or the sentinel.
func checkpointCause(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ErrBadCheckpoint.Error()+": "); i >= 0 {
		return msg[i+len(ErrBadCheckpoint.Error())+2:]
	}
	return msg
}
