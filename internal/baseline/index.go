package baseline

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/fim"
)

// Index gives random access to a verified baseline: the entry for one path,
// or the entries of one subtree, without reading the whole file. A watcher
// needs this to compare single changed paths with the baseline as they
// happen. It keeps only one small record per block in memory (a few hundred
// for a million entries).
//
// Blocks are re-read from the file on demand; each is checked against the
// SHA-256 of its stored bytes taken while the whole file was verified, so a
// change to the file after OpenIndex is refused like any other tampering.
type Index struct {
	path   string
	f      *os.File
	hdr    Header
	blocks []blockRef
	zd     *zstd.Decoder
	// dec decodes re-read blocks with the same bounds as a full read.
	dec decoder
	// cache holds the most recently decoded blocks: changes cluster in a
	// few directories, and decoding a block costs far more than a lookup
	// in it.
	cache []cachedBlock
}

// indexCacheBlocks bounds the cache: 16 blocks of about 256 KiB decoded.
const indexCacheBlocks = 16

type cachedBlock struct {
	i    int
	es   []*fim.Entry
	tags []uint32
}

type blockRef struct {
	fr         frame
	payloadOff int64
	first      string // path of the block's first entry
	sum        [sha256.Size]byte
}

// OpenIndex verifies the baseline at path, reads it once to index its
// blocks, and keeps the file open for lookups. Close releases it.
func OpenIndex(path string, v note.Verifier) (*Index, error) {
	r, err := Open(path, v)
	if err != nil {
		return nil, err
	}
	ix := &Index{path: path, f: r.f, hdr: r.Header()}
	var pending *blockRef
	r.dec.onBlock = func(fr frame, off int64, stored []byte) {
		ix.blocks = append(ix.blocks, blockRef{fr: fr, payloadOff: off, sum: sha256.Sum256(stored)})
		pending = &ix.blocks[len(ix.blocks)-1]
	}
	for {
		e, _, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Close()
			return nil, err
		}
		if pending != nil {
			pending.first = e.Path
			pending = nil
		}
	}
	// The reader's file stays open for ReadAt; its streaming decoder is
	// done with.
	r.dec.close()
	zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(maxBlockRaw))
	if err != nil {
		r.f.Close()
		return nil, fmt.Errorf("open baseline %s: %w", path, err)
	}
	ix.zd = zd
	ix.dec = decoder{path: path, zd: zd, hdr: ix.hdr}
	return ix, nil
}

// Header returns the baseline's header.
func (ix *Index) Header() Header { return ix.hdr }

// Close releases the file.
func (ix *Index) Close() error {
	ix.zd.Close()
	return ix.f.Close()
}

// blockFor returns the index of the last block whose first path is not
// after path: the only block that can hold it.
func (ix *Index) blockFor(path string) int {
	lo, hi := 0, len(ix.blocks)
	for lo < hi {
		m := (lo + hi) / 2
		if fim.ComparePaths(ix.blocks[m].first, path) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// entries returns the entries of block i, from the cache or by re-reading
// it. Callers must not modify the entries.
func (ix *Index) entries(i int) ([]*fim.Entry, []uint32, error) {
	for j, c := range ix.cache {
		if c.i == i {
			// Move to the front: least recently used blocks fall off the end.
			copy(ix.cache[1:j+1], ix.cache[:j])
			ix.cache[0] = c
			return c.es, c.tags, nil
		}
	}
	es, tags, err := ix.readBlock(i)
	if err != nil {
		return nil, nil, err
	}
	if len(ix.cache) < indexCacheBlocks {
		ix.cache = append(ix.cache, cachedBlock{})
	}
	copy(ix.cache[1:], ix.cache[:len(ix.cache)-1])
	ix.cache[0] = cachedBlock{i: i, es: es, tags: tags}
	return es, tags, nil
}

// readBlock re-reads block i, checks it and decodes all its entries.
func (ix *Index) readBlock(i int) ([]*fim.Entry, []uint32, error) {
	b := &ix.blocks[i]
	stored := make([]byte, b.fr.compLen)
	if _, err := ix.f.ReadAt(stored, b.payloadOff); err != nil {
		return nil, nil, tampered(ix.path, Truncated, "re-read block at byte %d: %v", b.fr.off, err)
	}
	if sum := sha256.Sum256(stored); !bytes.Equal(sum[:], b.sum[:]) {
		return nil, nil, tampered(ix.path, ContentMismatch, "block at byte %d changed after the baseline was verified", b.fr.off)
	}
	ix.dec.comp = stored
	raw, err := ix.dec.decodePayload(b.fr)
	if err != nil {
		return nil, nil, err
	}
	c := cursor{b: raw}
	var d delta
	es := make([]*fim.Entry, 0, b.fr.count)
	tags := make([]uint32, 0, b.fr.count)
	for n := uint64(0); n < b.fr.count; n++ {
		e, tag, err := decodeEntry(&c, &d, ix.hdr.Version)
		if err != nil {
			return nil, nil, tampered(ix.path, Corrupt, "block at byte %d, entry %d: %v", b.fr.off, n, err)
		}
		es = append(es, e)
		tags = append(tags, tag)
	}
	return es, tags, nil
}

// Lookup returns the baseline's entry for path and the ID of the
// acceptance that recorded it, or ErrNotFound.
func (ix *Index) Lookup(path string) (*fim.Entry, uint32, error) {
	i := ix.blockFor(path)
	if i < 0 {
		return nil, 0, ErrNotFound
	}
	es, tags, err := ix.entries(i)
	if err != nil {
		return nil, 0, err
	}
	j, ok := slices.BinarySearchFunc(es, path, func(e *fim.Entry, p string) int { return fim.ComparePaths(e.Path, p) })
	if !ok {
		return nil, 0, ErrNotFound
	}
	return es[j], tags[j], nil
}

// Subtree returns an iterator over the entries at or below root, in walk
// order, in the shape scan.Run takes as its old side.
func (ix *Index) Subtree(root string) *SubtreeIter {
	return &SubtreeIter{ix: ix, root: root, block: max(ix.blockFor(root), 0)}
}

// SubtreeIter iterates the entries of one subtree of an Index.
type SubtreeIter struct {
	ix    *Index
	root  string
	block int
	es    []*fim.Entry
	tags  []uint32
	pos   int
	done  bool
}

// Next returns the next entry of the subtree, or io.EOF.
func (it *SubtreeIter) Next() (*fim.Entry, uint32, error) {
	for !it.done {
		if it.pos == len(it.es) {
			if it.block >= len(it.ix.blocks) {
				it.done = true
				break
			}
			var err error
			if it.es, it.tags, err = it.ix.entries(it.block); err != nil {
				return nil, 0, err
			}
			it.block++
			it.pos = 0
			continue
		}
		e, tag := it.es[it.pos], it.tags[it.pos]
		it.pos++
		if fim.ComparePaths(e.Path, it.root) < 0 {
			continue
		}
		if !fim.IsWithin(e.Path, it.root) {
			it.done = true
			break
		}
		return e, tag, nil
	}
	return nil, 0, io.EOF
}
