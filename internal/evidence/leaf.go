package evidence

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
)

// LeafVersion is the first byte of every leaf this package writes. A new
// encoding gets a new version; decoders reject versions they do not know
// rather than guess.
const LeafVersion = 1

// leafFixedLen is the version byte, the index and the time.
const leafFixedLen = 1 + 8 + 8

// MaxLeafLen is the longest leaf DecodeLeaf accepts: the fixed part, four
// length prefixes and every field at its limit.
const MaxLeafLen = leafFixedLen + 4*4 + MaxKindLen + MaxHostLen + MaxActorLen + MaxBodyLen

// ErrMalformedLeaf is wrapped by every DecodeLeaf error.
var ErrMalformedLeaf = errors.New("malformed leaf")

// EncodeLeaf returns the canonical leaf for r at position index of the log
// (docs/evidence.md, "Leaf encoding"):
//
//	version  u8      = 1
//	index    u64 BE  position in the log
//	time     i64 BE  Unix nanoseconds, UTC
//	kind     u32 BE length + bytes
//	host     u32 BE length + bytes
//	actor    u32 BE length + bytes
//	body     u32 BE length + bytes (compact JSON object)
//
// The index is inside the leaf so that a record moved to another position
// no longer matches its hash and verification can tell "reordered" from
// "altered".
func EncodeLeaf(index uint64, r Record) ([]byte, error) {
	r, err := r.canonical()
	if err != nil {
		return nil, err
	}
	return appendLeaf(nil, index, r), nil
}

// appendLeaf appends the encoding of canonical record r to dst.
func appendLeaf(dst []byte, index uint64, r Record) []byte {
	dst = append(dst, LeafVersion)
	dst = binary.BigEndian.AppendUint64(dst, index)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Time.UnixNano()))
	for _, f := range [...][]byte{[]byte(r.Kind), []byte(r.Host), []byte(r.Actor), r.Body} {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

// DecodeLeaf parses a leaf written by EncodeLeaf. It is strict: a leaf
// decodes only if re-encoding the result gives back the same bytes, so one
// record has exactly one leaf.
func DecodeLeaf(leaf []byte) (index uint64, r Record, err error) {
	if len(leaf) > MaxLeafLen {
		return 0, Record{}, fmt.Errorf("%w: %d bytes, longer than %d", ErrMalformedLeaf, len(leaf), MaxLeafLen)
	}
	if len(leaf) < leafFixedLen {
		return 0, Record{}, fmt.Errorf("%w: %d bytes, shorter than the fixed header", ErrMalformedLeaf, len(leaf))
	}
	if leaf[0] != LeafVersion {
		return 0, Record{}, fmt.Errorf("%w: version %d, want %d", ErrMalformedLeaf, leaf[0], LeafVersion)
	}
	index = binary.BigEndian.Uint64(leaf[1:9])
	ns := int64(binary.BigEndian.Uint64(leaf[9:17]))
	rest := leaf[leafFixedLen:]
	var fields [4][]byte
	names := [4]string{"kind", "host", "actor", "body"}
	limits := [4]int{MaxKindLen, MaxHostLen, MaxActorLen, MaxBodyLen}
	for i := range fields {
		if len(rest) < 4 {
			return 0, Record{}, fmt.Errorf("%w: truncated before %s length", ErrMalformedLeaf, names[i])
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(limits[i]) {
			return 0, Record{}, fmt.Errorf("%w: %s length %d exceeds %d", ErrMalformedLeaf, names[i], n, limits[i])
		}
		if uint64(n) > uint64(len(rest)) {
			return 0, Record{}, fmt.Errorf("%w: %s length %d exceeds the %d bytes left", ErrMalformedLeaf, names[i], n, len(rest))
		}
		fields[i], rest = rest[:n], rest[n:]
	}
	if len(rest) != 0 {
		return 0, Record{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformedLeaf, len(rest))
	}
	r = Record{
		Kind:  string(fields[0]),
		Time:  time.Unix(0, ns).UTC(),
		Host:  string(fields[1]),
		Actor: string(fields[2]),
		Body:  json.RawMessage(fields[3]),
	}
	if err := r.Validate(); err != nil {
		return 0, Record{}, fmt.Errorf("%w: %v", ErrMalformedLeaf, err)
	}
	if !isCompact(r.Body) {
		return 0, Record{}, fmt.Errorf("%w: body JSON is not compact", ErrMalformedLeaf)
	}
	return index, r, nil
}

// LeafHash returns the RFC 6962 leaf hash SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) []byte {
	return rfc6962.DefaultHasher.HashLeaf(leaf)
}

// hashChildren returns the RFC 6962 interior node hash
// SHA-256(0x01 || left || right).
func hashChildren(left, right []byte) []byte {
	return rfc6962.DefaultHasher.HashChildren(left, right)
}
