package baseline

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Format constants; docs/baseline-format.md is the normative description.
const (
	// Version is the format version this package writes. It reads every
	// version from minVersion up: version 2 added the device number of
	// character and block devices (field 19 of an entry record).
	Version = 2
	// minVersion is the oldest format version this package reads.
	minVersion = 1

	// magic starts every baseline. Like PNG's signature it has a high-bit
	// byte and CR LF / LF / ^Z so text-mode transfers that mangle line
	// endings are caught as bad magic.
	magic = "\x89VBL\r\n\x1a\n"

	preambleLen = len(magic) + 2 // magic + big-endian uint16 version

	// Block kinds.
	kindHeader  = 1
	kindEntries = 2
	kindEnd     = 3

	// Block codecs.
	codecStored = 0
	codecZstd   = 1

	// maxHeaderRaw bounds the decoded header block: it holds the policy
	// and the acceptance history, which are kept in memory.
	maxHeaderRaw = 64 << 20
	// maxBlockRaw bounds a decoded entry block. Writers aim for
	// blockTarget; the cap leaves room for one entry with many large
	// extended attributes.
	maxBlockRaw = 16 << 20
	// maxCompressed bounds the stored size of any block: incompressible
	// data grows a little under zstd, but writers store such blocks
	// uncompressed instead.
	maxCompressed = maxHeaderRaw
	// maxTrailer bounds the signed note: a few hundred bytes in practice.
	maxTrailer = 16 << 10
	// blockTarget is the decoded size at which a writer closes an entry
	// block. 256 KiB keeps zstd close to its best ratio on this data
	// (see docs/baseline-format.md for the measurement) while a reader
	// holds only a few hundred KiB.
	blockTarget = 256 << 10
	// maxEntryRaw bounds one encoded entry so that it always fits a block.
	maxEntryRaw = maxBlockRaw
)

// frame is the framing of one block: everything but its payload.
type frame struct {
	kind    byte
	count   uint64 // entries in the block (entry blocks), in the file (end block)
	rawLen  uint64 // decoded payload length
	codec   byte
	compLen uint64 // stored payload length
	off     int64  // offset of the block's first byte
}

// source reads the body of a baseline, hashing and counting every byte.
type source struct {
	r   *bufio.Reader
	h   hash.Hash
	off int64
	buf [binary.MaxVarintLen64]byte
}

func (s *source) ReadByte() (byte, error) {
	c, err := s.r.ReadByte()
	if err != nil {
		return 0, err
	}
	s.buf[0] = c
	s.h.Write(s.buf[:1])
	s.off++
	return c, nil
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.off += int64(n)
	return n, err
}

// errShort reports that the input ended inside a structure.
var errShort = errors.New("unexpected end of file")

func (s *source) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(s)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return 0, errShort
	}
	return v, err
}

// full reads exactly n bytes into buf (reusing its capacity). The buffer
// grows with the bytes actually read, not with n, so a hostile length
// costs no more memory than the input really holds.
func (s *source) full(buf []byte, n uint64) ([]byte, error) {
	buf = buf[:0]
	for uint64(len(buf)) < n {
		chunk := min(n-uint64(len(buf)), 1<<20)
		start := len(buf)
		buf = append(buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(s, buf[start:]); err != nil {
			return nil, errShort
		}
	}
	return buf, nil
}

// skip hashes and discards n bytes.
func (s *source) skip(n uint64) error {
	if _, err := io.CopyN(io.Discard, s, int64(n)); err != nil {
		if err == io.EOF {
			return errShort
		}
		return err
	}
	return nil
}

// readPreamble reads and checks the magic and version, and returns the
// version.
func readPreamble(s *source, path string) (int, error) {
	var p [preambleLen]byte
	n, err := io.ReadFull(s, p[:])
	if err != nil {
		if string(p[:min(n, len(magic))]) == magic[:min(n, len(magic))] {
			return 0, tampered(path, Truncated, "file ends after %d bytes, inside the preamble", n)
		}
		return 0, tampered(path, BadMagic, "not a Vigil baseline (file starts %q)", p[:n])
	}
	if string(p[:len(magic)]) != magic {
		return 0, tampered(path, BadMagic, "not a Vigil baseline (file starts %q)", p[:len(magic)])
	}
	v := int(binary.BigEndian.Uint16(p[len(magic):]))
	if v < minVersion || v > Version {
		return 0, tampered(path, UnsupportedVersion, "format version %d, this Vigil reads versions %d to %d", v, minVersion, Version)
	}
	return v, nil
}

// readFrame reads the framing of the next block. first says whether this
// must be the header block.
func readFrame(s *source, path string, first bool) (frame, error) {
	f := frame{off: s.off}
	bad := func(err error) error {
		if errors.Is(err, errShort) {
			return tampered(path, Truncated, "file ends inside the block starting at byte %d", f.off)
		}
		return tampered(path, Corrupt, "block at byte %d: %v", f.off, err)
	}
	k, err := s.ReadByte()
	if err == io.EOF {
		return f, tampered(path, Truncated, "file ends at byte %d where a block should start", f.off)
	}
	if err != nil {
		return f, fmt.Errorf("read baseline %s: %w", path, err)
	}
	f.kind = k
	switch {
	case first && k != kindHeader:
		return f, tampered(path, Corrupt, "block at byte %d has kind %d, want the header block (%d)", f.off, k, kindHeader)
	case !first && k == kindHeader:
		return f, tampered(path, Corrupt, "second header block at byte %d", f.off)
	case k == kindEnd:
		if f.count, err = s.uvarint(); err != nil {
			return f, bad(err)
		}
		return f, nil
	case k == kindEntries:
		if f.count, err = s.uvarint(); err != nil {
			return f, bad(err)
		}
	case k != kindHeader:
		return f, tampered(path, Corrupt, "unknown block kind %d at byte %d", k, f.off)
	}
	if f.rawLen, err = s.uvarint(); err != nil {
		return f, bad(err)
	}
	if f.codec, err = s.ReadByte(); err != nil {
		return f, bad(errShort)
	}
	if f.compLen, err = s.uvarint(); err != nil {
		return f, bad(err)
	}
	limit := uint64(maxBlockRaw)
	if k == kindHeader {
		limit = maxHeaderRaw
	}
	switch {
	case f.rawLen > limit:
		return f, tampered(path, Corrupt, "block at byte %d claims %d decoded bytes, over the limit of %d", f.off, f.rawLen, limit)
	case f.compLen > maxCompressed:
		return f, tampered(path, Corrupt, "block at byte %d claims %d stored bytes, over the limit of %d", f.off, f.compLen, maxCompressed)
	case f.codec != codecStored && f.codec != codecZstd:
		return f, tampered(path, Corrupt, "block at byte %d uses unknown codec %d", f.off, f.codec)
	case f.codec == codecStored && f.compLen != f.rawLen:
		return f, tampered(path, Corrupt, "stored block at byte %d has %d stored but %d decoded bytes", f.off, f.compLen, f.rawLen)
	case k == kindEntries && (f.count == 0 || f.count > f.rawLen):
		return f, tampered(path, Corrupt, "entry block at byte %d claims %d entries in %d bytes", f.off, f.count, f.rawLen)
	}
	return f, nil
}

// cursor decodes fields from a decoded block. The first error sticks, so
// callers check once after a record.
type cursor struct {
	b   []byte
	err error
}

var errRecord = errors.New("record runs past the end of its block")

func (c *cursor) uvarint() uint64 {
	if c.err != nil {
		return 0
	}
	v, n := binary.Uvarint(c.b)
	if n <= 0 {
		c.err = errRecord
		if n < 0 {
			c.err = errors.New("varint overflows 64 bits")
		}
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *cursor) varint() int64 {
	u := c.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (c *cursor) u32(what string) uint32 {
	v := c.uvarint()
	if v > 1<<32-1 && c.err == nil {
		c.err = fmt.Errorf("%s %d overflows 32 bits", what, v)
	}
	return uint32(v)
}

func (c *cursor) byte() byte {
	if c.err != nil {
		return 0
	}
	if len(c.b) == 0 {
		c.err = errRecord
		return 0
	}
	v := c.b[0]
	c.b = c.b[1:]
	return v
}

// bytes returns a length-prefixed byte string (aliasing the block).
func (c *cursor) bytes(max uint64, what string) []byte {
	n := c.uvarint()
	if c.err != nil {
		return nil
	}
	if n > max {
		c.err = fmt.Errorf("%s of %d bytes is over the limit of %d", what, n, max)
		return nil
	}
	if n > uint64(len(c.b)) {
		c.err = errRecord
		return nil
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) string(max uint64, what string) string { return string(c.bytes(max, what)) }

// count reads an element count, refusing counts that cannot fit in the
// rest of the block (every element takes at least one byte) so that a
// hostile count never sizes an allocation.
func (c *cursor) count(what string) int {
	n := c.uvarint()
	if c.err == nil && n > uint64(len(c.b)) {
		c.err = fmt.Errorf("%s count %d exceeds the %d bytes left", what, n, len(c.b))
		return 0
	}
	return int(n)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// appendVarint appends v zigzag-encoded (encoding/binary's varint).
func appendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }
