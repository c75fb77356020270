package baseline

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/vigilfim/vigil/internal/fim"
)

// body builds a baseline body by hand (no trailer: the decoder does not
// read it), so that tests can feed the decoder records no writer makes.
type body struct{ b []byte }

func newBody(hdr []byte) *body { return newBodyVersion(hdr, 1) }

func newBodyVersion(hdr []byte, version byte) *body {
	b := &body{b: []byte(magic + "\x00" + string(rune(version)))}
	return b.block(kindHeader, 0, hdr)
}

func (b *body) block(kind byte, n uint64, raw []byte) *body {
	b.b = append(b.b, kind)
	if kind == kindEntries {
		b.b = appendUvarint(b.b, n)
	}
	b.b = appendUvarint(b.b, uint64(len(raw)))
	b.b = append(b.b, codecStored)
	b.b = appendUvarint(b.b, uint64(len(raw)))
	b.b = append(b.b, raw...)
	return b
}

func (b *body) raw(p ...byte) *body { b.b = append(b.b, p...); return b }

func (b *body) end(n uint64) []byte { return appendUvarint(append(b.b, kindEnd), n) }

func rec(e *fim.Entry, tag uint32) []byte { return recVersion(e, tag, Version) }

func recVersion(e *fim.Entry, tag uint32, version int) []byte {
	var d delta
	return appendEntry(nil, &d, e, tag, version)
}

// record encodes fields by hand: shared, suffix, then the rest as given.
func record(shared uint64, suffix string, rest ...byte) []byte {
	b := appendUvarint(nil, shared)
	b = appendString(b, suffix)
	return append(b, rest...)
}

func decodeAll(data []byte) (int, error) {
	d, err := newDecoder(bytes.NewReader(data), "x")
	if err != nil {
		return 0, err
	}
	defer d.close()
	n := 0
	for {
		_, _, err := d.next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func TestDecodeHostile(t *testing.T) {
	h := testHeader()
	hdr := encodeHeader(&h)
	file := &fim.Entry{Path: "/a", Type: fim.TypeFile}
	// fields after the path of a plain file: type, tag, mode, uid, gid,
	// size, mtime, ctime, inode, dev, nlink, alg, link, acl, xattrs.
	plain := []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	withXattrCount := func(n byte) []byte { p := bytes.Clone(plain); p[len(p)-1] = n; return p }
	zeroHdr := Header{Acceptances: []Acceptance{{ID: 0}}}
	zstdBlock := func(fcs uint64) []byte {
		enc, _ := zstd.NewWriter(nil)
		defer enc.Close()
		raw := bytes.Repeat(rec(file, 0), 1)
		c := enc.EncodeAll(bytes.Repeat(raw, 300), nil)
		b := newBody(hdr).b
		b = append(b, kindEntries)
		b = appendUvarint(b, 1)
		b = appendUvarint(b, fcs)
		b = append(b, codecZstd)
		b = appendUvarint(b, uint64(len(c)))
		return append(b, c...)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"ok", newBody(hdr).block(kindEntries, 1, rec(file, 0)).end(1), ""},
		{"end count mismatch", newBody(hdr).block(kindEntries, 1, rec(file, 0)).end(2), "counts 2 entries"},
		{"no end block", newBody(hdr).block(kindEntries, 1, rec(file, 0)).b, "truncated"},
		{"second header", newBody(hdr).block(kindHeader, 0, hdr).end(0), "second header"},
		{"entries before header", append([]byte(magic+"\x00\x01"), kindEntries), "want the header block"},
		{"unknown kind", newBody(hdr).raw(9).end(0), "unknown block kind 9"},
		{"unknown codec", newBody(hdr).raw(kindEntries, 1, 1, 7, 1, 0).end(0), "unknown codec 7"},
		{"huge raw length", newBody(hdr).raw(kindEntries, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0).end(0), "over the limit"},
		{"huge stored length", newBody(hdr).raw(kindEntries, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f).end(0), "over the limit"},
		{"stored length mismatch", newBody(hdr).raw(kindEntries, 1, 5, 0, 4).end(0), "stored but"},
		{"zero entries", newBody(hdr).block(kindEntries, 0, rec(file, 0)).end(0), "claims 0 entries"},
		{"more entries than bytes", newBody(hdr).block(kindEntries, 1000, rec(file, 0)).end(0), "claims 1000 entries"},
		{"varint overflow", newBody(hdr).raw(kindEntries, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01).end(0), "corrupt"},
		{"bytes after last entry", newBody(hdr).block(kindEntries, 1, append(rec(file, 0), 0)).end(1), "after its last entry"},
		{"record past block", newBody(hdr).block(kindEntries, 2, rec(file, 0)).end(2), "runs past the end"},
		{"shared too long", newBody(hdr).block(kindEntries, 1, record(5, "a", plain...)).end(1), "shares 5 bytes"},
		{"huge path length", newBody(hdr).block(kindEntries, 1, append([]byte{0, 0xff, 0xff, 0xff, 0x7f}, plain...)).end(1), "over the limit"},
		{"empty path", newBody(hdr).block(kindEntries, 1, record(0, "", plain...)).end(1), "empty path"},
		{"bad type", newBody(hdr).block(kindEntries, 1, record(0, "/a", append([]byte{9}, plain[1:]...)...)).end(1), "invalid file type"},
		{"unknown tag", newBody(hdr).block(kindEntries, 1, rec(file, 5)).end(1), "tag 5 names no acceptance"},
		{"uid overflow", newBody(hdr).block(kindEntries, 1, record(0, "/a", 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x7f)).end(1), "overflows 32 bits"},
		{"out of order", newBody(hdr).block(kindEntries, 1, rec(&fim.Entry{Path: "/b", Type: fim.TypeFile}, 0)).
			block(kindEntries, 1, rec(file, 0)).end(2), "not after"},
		{"duplicate", newBody(hdr).block(kindEntries, 1, rec(file, 0)).block(kindEntries, 1, rec(file, 0)).end(2), "not after"},
		{"unknown hash", newBody(hdr).block(kindEntries, 1, record(0, "/a", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0)).end(1), "unknown hash"},
		{"short digest", newBody(hdr).block(kindEntries, 1, record(0, "/a", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 7, 0, 0, 0)).end(1), "want 32"},
		{"huge xattr count", newBody(hdr).block(kindEntries, 1, record(0, "/a", append(plain[:len(plain)-1], 0xff, 0xff, 0xff, 0xff, 0x0f)...)).end(1), "exceeds"},
		{"unsorted xattrs", newBody(hdr).block(kindEntries, 1, record(0, "/a", append(withXattrCount(2), 1, 'b', 0, 1, 'a', 0)...)).end(1), "not sorted"},
		{"empty xattr name", newBody(hdr).block(kindEntries, 1, record(0, "/a", append(withXattrCount(1), 0, 0)...)).end(1), "xattr name"},
		{"header trailing bytes", newBody(append(bytes.Clone(hdr), 0)).end(0), "unexpected bytes after the header"},
		{"header no acceptance", newBody(encodeHeader(&Header{})).end(0), "no acceptance"},
		{"header huge root count", newBody([]byte{0, 0, 0, 0, 0, 0xff, 0xff, 0x03}).end(0), "exceeds"},
		{"header bad nanos", newBody(append([]byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, encodeHeader(&zeroHdr)[3:]...)).end(0), "out of range"},
		{"zstd size mismatch", zstdBlock(7), "does not declare"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeAll(tt.data)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("err = %v does not match ErrTampered", err)
			}
		})
	}
}

// TestDecodeDeviceNumbers checks field 19 (format version 2) and that
// version-1 records, which lack it, still decode.
func TestDecodeDeviceNumbers(t *testing.T) {
	h := testHeader()
	hdr := encodeHeader(&h)
	dev := &fim.Entry{Path: "/dev/x", Type: fim.TypeCharDev, Rdev: &fim.DevNumber{Major: 1, Minor: 3}}
	unknown := &fim.Entry{Path: "/dev/x", Type: fim.TypeBlockDev}
	file := &fim.Entry{Path: "/a", Type: fim.TypeFile}
	v2 := rec(dev, 0)
	withPresence := func(b byte) []byte {
		r := recVersion(unknown, 0, 2)
		r[len(r)-1] = b
		return r
	}
	tests := []struct {
		name    string
		data    []byte
		want    string
		rdev    string
		version int
	}{
		{"v2 device", newBodyVersion(hdr, 2).block(kindEntries, 1, v2).end(1), "", "1:3", 2},
		{"v2 device without number", newBodyVersion(hdr, 2).block(kindEntries, 1, rec(unknown, 0)).end(1), "", "", 2},
		{"v1 device", newBodyVersion(hdr, 1).block(kindEntries, 1, recVersion(dev, 0, 1)).end(1), "", "", 1},
		{"v1 reader of a v2 record", newBodyVersion(hdr, 1).block(kindEntries, 1, v2).end(1), "after its last entry", "", 1},
		{"v2 record missing field 19", newBodyVersion(hdr, 2).block(kindEntries, 1, recVersion(dev, 0, 1)).end(1), "runs past the end", "", 2},
		{"bad presence byte", newBodyVersion(hdr, 2).block(kindEntries, 1, withPresence(2)).end(1), "rdev presence byte 2", "", 2},
		{"major overflows", newBodyVersion(hdr, 2).block(kindEntries, 1, append(withPresence(1), 0xff, 0xff, 0xff, 0xff, 0x7f, 0)).end(1), "overflows 32 bits", "", 2},
		{"file with a number", newBodyVersion(hdr, 2).block(kindEntries, 1, append(rec(file, 0), 1, 1, 3)).end(1), "after its last entry", "", 2},
		{"version 3", newBodyVersion(hdr, 3).end(0), "unsupported version", "", 3},
		{"version 0", newBodyVersion(hdr, 0).end(0), "unsupported version", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := newDecoder(bytes.NewReader(tt.data), "x")
			var e *fim.Entry
			if err == nil {
				defer d.close()
				if d.hdr.Version != tt.version {
					t.Errorf("header version %d, want %d", d.hdr.Version, tt.version)
				}
				e, _, err = d.next()
				if err == nil {
					// Bytes left in the block show on the next call.
					_, _, err = d.next()
					if err == io.EOF {
						err = nil
					}
				}
			}
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrTampered) {
					t.Fatalf("err = %v, want ErrTampered containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.RdevString() != tt.rdev {
				t.Fatalf("rdev %q, want %q", e.RdevString(), tt.rdev)
			}
		})
	}
}

func TestParseSignedText(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	good := "vigil baseline v1\nsize 10\nsha256 " + sum + "\nentries 0\ngeneration 18446744073709551615\n"
	if s, err := parseSignedText(good); err != nil || s.generation != 1<<64-1 || s.size != 10 || s.version != 1 {
		t.Fatalf("good text: %+v, %v", s, err)
	}
	for _, bad := range []string{
		"",
		"vigil baseline v1\n",
		strings.Replace(good, "size 10", "size 010", 1),
		strings.Replace(good, "size 10", "size +10", 1),
		strings.Replace(good, sum, strings.ToUpper(sum), 1),
		strings.Replace(good, sum, sum[:62], 1),
		strings.Replace(good, "entries 0", "entries  0", 1),
		strings.Replace(good, "v1", "v01", 1),
		strings.Replace(good, "size 10", "size 9223372036854775808", 1),
		good + "extra 1\n",
		strings.TrimSuffix(good, "\n"),
	} {
		if _, err := parseSignedText(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
