package fsys

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/vigilfim/vigil/internal/fim"
)

// HashRequest says which digests Hash computes.
type HashRequest struct {
	// Alg is the algorithm for the digest of the whole content.
	Alg fim.HashAlg
	// PrefixAlg, unless fim.HashNone, asks in the same read pass for the
	// digest of the first PrefixLen bytes: for a growing log, the digest
	// of what the baseline saw, to prove the old content is unchanged.
	PrefixAlg fim.HashAlg
	PrefixLen int64
	// Growing accepts a file that grows while it is read (a log being
	// appended to): exactly the stat'ed size is hashed, and only a
	// truncation or replacement is an error.
	Growing bool
	// Progress, when set, is called with the number of bytes after every
	// read, so a caller can report progress through a multi-GB file.
	Progress func(n int64)
}

// HashResult holds the digests computed by Hash.
type HashResult struct {
	Sum fim.Digest
	// Prefix is set when the request asked for it and the file had at
	// least PrefixLen bytes.
	Prefix fim.Digest
	// Size is the number of bytes hashed.
	Size int64
}

// readBufSize balances syscall count against memory: a worker holds one
// buffer, and 256 KiB reads hash at memory speed.
const readBufSize = 256 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

var (
	sha256Pool = sync.Pool{New: func() any { return sha256.New() }}
	blake3Pool = sync.Pool{New: func() any { return blake3.New() }}
)

// newHash returns a reset hash for alg and a function returning it to its
// pool.
func newHash(alg fim.HashAlg) (hash.Hash, func(), error) {
	var p *sync.Pool
	switch alg {
	case fim.SHA256:
		p = &sha256Pool
	case fim.BLAKE3:
		p = &blake3Pool
	default:
		return nil, nil, fmt.Errorf("hash with %v: unsupported algorithm", alg)
	}
	h := p.Get().(hash.Hash)
	h.Reset()
	return h, func() { p.Put(h) }, nil
}

// digester feeds content to the full hash and, up to PrefixLen, to the
// prefix hash. When both use the same algorithm the prefix digest is taken
// from the full hash as it crosses PrefixLen (Sum doesn't disturb the
// state), so growing files are still read and hashed once.
type digester struct {
	req          HashRequest
	full, prefix hash.Hash
	n            int64
	prefixSum    []byte
	release      []func()
}

func newDigester(req HashRequest) (*digester, error) {
	d := &digester{req: req}
	h, put, err := newHash(req.Alg)
	if err != nil {
		return nil, err
	}
	d.full = h
	d.release = append(d.release, put)
	if req.PrefixAlg == fim.HashNone {
		return d, nil
	}
	if req.PrefixLen < 0 {
		return nil, fmt.Errorf("hash prefix of %d bytes: negative length", req.PrefixLen)
	}
	if req.PrefixAlg != req.Alg {
		h, put, err := newHash(req.PrefixAlg)
		if err != nil {
			d.close()
			return nil, err
		}
		d.prefix = h
		d.release = append(d.release, put)
	}
	if req.PrefixLen == 0 {
		d.takePrefix()
	}
	return d, nil
}

func (d *digester) write(p []byte) {
	if d.req.PrefixAlg != fim.HashNone && d.prefixSum == nil {
		if room := d.req.PrefixLen - d.n; int64(len(p)) >= room {
			d.feed(p[:room])
			d.takePrefix()
			p = p[room:]
		} else {
			d.feed(p)
			return
		}
	}
	d.full.Write(p)
	d.n += int64(len(p))
}

// feed writes bytes that lie inside the prefix.
func (d *digester) feed(p []byte) {
	d.full.Write(p)
	if d.prefix != nil {
		d.prefix.Write(p)
	}
	d.n += int64(len(p))
}

func (d *digester) takePrefix() {
	if d.prefix != nil {
		d.prefixSum = d.prefix.Sum(nil)
	} else {
		d.prefixSum = d.full.Sum(nil)
	}
}

func (d *digester) result() HashResult {
	r := HashResult{Sum: fim.Digest{Alg: d.req.Alg, Sum: d.full.Sum(nil)}, Size: d.n}
	if d.prefixSum != nil {
		r.Prefix = fim.Digest{Alg: d.req.PrefixAlg, Sum: d.prefixSum}
	}
	return r
}

func (d *digester) close() {
	for _, f := range d.release {
		f()
	}
}
