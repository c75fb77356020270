package evidence

import (
	"context"
	"errors"
	"time"

	"github.com/transparency-dev/merkle/compact"
)

// Errors a store returns that callers here branch on.
var (
	// ErrConflict is returned by LeafStore.AppendLeaves when the log no
	// longer has the size the caller expected: another writer appended
	// first. The caller reloads the head and tries again.
	ErrConflict = errors.New("evidence log head moved")
	// ErrNotFound is returned when a node or checkpoint does not exist.
	ErrNotFound = errors.New("not found")
)

// NodeID names a node of the Merkle tree: level 0 holds leaf hashes, level
// L index I covers leaves [I<<L, (I+1)<<L).
type NodeID = compact.NodeID

// Node is an interior node of the tree as stored: the hash of a perfect
// subtree. Stores keep them so that proofs cost a few lookups rather than a
// pass over the log.
type Node struct {
	ID   NodeID
	Hash []byte
}

// StoredLeaf is one row of the log as a store keeps it.
type StoredLeaf struct {
	// Index is the row's position in the log (the primary key).
	Index uint64
	// Kind and TimeNS repeat the record's kind and time outside the leaf so
	// that the store can select by them (prune, filters). Verification
	// checks them against the leaf.
	Kind   string
	TimeNS int64
	// Leaf is the canonical encoding; nil once the payload was pruned.
	Leaf []byte
	// Hash is the RFC 6962 leaf hash of Leaf. It stays after a prune so the
	// tree, its checkpoints and its proofs stay valid.
	Hash []byte
}

// StoredCheckpoint is a signed checkpoint as stored, in signing order.
type StoredCheckpoint struct {
	Seq     uint64    // 1, 2, ... in the order checkpoints were added
	Size    uint64    // tree size the checkpoint commits to (as stored, unverified)
	Created time.Time // when it was stored (informational)
	Note    []byte    // the signed note, verbatim
}

// LeafStore is what Log needs to append: the committed size, and an atomic
// append of leaves with the interior nodes they complete.
type LeafStore interface {
	// LogSize returns the number of leaves committed.
	LogSize(ctx context.Context) (uint64, error)
	// AppendLeaves commits leaves (whose indices are size, size+1, ...)
	// and nodes in one durable transaction, moving the size from size to
	// size+len(leaves). It returns an error wrapping ErrConflict, and
	// commits nothing, if the committed size is not size.
	AppendLeaves(ctx context.Context, size uint64, leaves []StoredLeaf, nodes []Node) error
}

// NodeReader returns stored node hashes. Level 0 IDs are leaf hashes. It
// returns one hash per ID in order, or an error wrapping ErrNotFound naming
// the first missing node.
type NodeReader interface {
	Nodes(ctx context.Context, ids []NodeID) ([][]byte, error)
}

// LeafScanner streams stored leaves with from <= index < to in index order.
// The StoredLeaf passed to fn (and its slices) is only valid during the call.
// An error returned by fn stops the scan and is returned.
type LeafScanner interface {
	ScanLeaves(ctx context.Context, from, to uint64, fn func(*StoredLeaf) error) error
}

// KindScanner streams the stored leaves of one kind in index order. Verify
// uses it to find prune records before the main pass; stores index it so
// it does not cost a full scan.
type KindScanner interface {
	ScanKind(ctx context.Context, kind string, fn func(*StoredLeaf) error) error
}

// CheckpointStore keeps signed checkpoints.
type CheckpointStore interface {
	// AddCheckpoint stores a signed checkpoint for a tree of size entries.
	AddCheckpoint(ctx context.Context, size uint64, note []byte, created time.Time) error
	// LatestCheckpoint returns the checkpoint with the highest Seq, or an
	// error wrapping ErrNotFound when there is none.
	LatestCheckpoint(ctx context.Context) (StoredCheckpoint, error)
	// ScanCheckpoints streams up to limit checkpoints with Seq > afterSeq
	// in Seq order (paging keeps a long history out of memory).
	ScanCheckpoints(ctx context.Context, afterSeq uint64, limit int, fn func(StoredCheckpoint) error) error
}

// PayloadPruner drops payloads under a retention rule.
type PayloadPruner interface {
	// PruneLeaves sets Leaf to nil (keeping Hash) on every leaf with
	// index < below and TimeNS < beforeNS whose kind is not "prune" and
	// whose payload is still there. It returns how many it pruned. With
	// dryRun it only counts them.
	PruneLeaves(ctx context.Context, below uint64, beforeNS int64, dryRun bool) (uint64, error)
}

// Store is everything this package asks of a database. The SQLite and
// PostgreSQL stores implement it; functions here ask only for the parts
// they use.
type Store interface {
	LeafStore
	NodeReader
	LeafScanner
	KindScanner
	CheckpointStore
	PayloadPruner
}
