package evidence

import (
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// rangeFactory builds compact ranges with the RFC 6962 SHA-256 hasher.
var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// emptyRoot is the root of the empty tree, SHA-256 of nothing.
func emptyRoot() []byte { return rfc6962.DefaultHasher.EmptyRoot() }

// loadRange returns the compact range [0, size) built from stored nodes.
func loadRange(ctx context.Context, nr NodeReader, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := nr.Nodes(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("load tree border at size %d: %w", size, err)
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("load tree border at size %d: %w", size, err)
	}
	return r, nil
}

// rootOf returns the root hash of compact range r, which starts at 0.
func rootOf(r *compact.Range) []byte {
	if r.End() == 0 {
		return emptyRoot()
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		// Only possible for a range not starting at 0, which this package
		// never builds.
		panic(fmt.Sprintf("evidence: root of range [%d,%d): %v", r.Begin(), r.End(), err))
	}
	return root
}

// RootAt returns the root hash of the first size leaves, from stored nodes.
func RootAt(ctx context.Context, nr NodeReader, size uint64) ([]byte, error) {
	r, err := loadRange(ctx, nr, size)
	if err != nil {
		return nil, err
	}
	return rootOf(r), nil
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of the given size, built from stored nodes. The proof is as good as
// the store: check it with VerifyInclusion against a signed root.
func InclusionProof(ctx context.Context, nr NodeReader, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("plan inclusion proof: %w", err)
	}
	return fetchProof(ctx, nr, nodes)
}

// ConsistencyProof returns the RFC 6962 consistency proof between trees of
// size1 and size2, built from stored nodes.
func ConsistencyProof(ctx context.Context, nr NodeReader, size1, size2 uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("plan consistency proof: %w", err)
	}
	return fetchProof(ctx, nr, nodes)
}

func fetchProof(ctx context.Context, nr NodeReader, nodes proof.Nodes) ([][]byte, error) {
	if len(nodes.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := nr.Nodes(ctx, nodes.IDs)
	if err != nil {
		return nil, fmt.Errorf("fetch proof nodes: %w", err)
	}
	p, err := nodes.Rehash(hashes, hashChildren)
	if err != nil {
		return nil, fmt.Errorf("build proof: %w", err)
	}
	return p, nil
}

// VerifyInclusion checks that leafHash is at index in the tree of the given
// size and root.
func VerifyInclusion(index, size uint64, leafHash []byte, p [][]byte, root []byte) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash, p, root)
}

// VerifyConsistency checks that the tree (size2, root2) extends the tree
// (size1, root1).
func VerifyConsistency(size1, size2 uint64, p [][]byte, root1, root2 []byte) error {
	return proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, root1, root2)
}
