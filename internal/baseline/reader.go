package baseline

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/fim"
)

// Reader reads a verified baseline. Entries come in fim.ComparePaths
// order. They are final only once Next has returned io.EOF: the decoding
// pass re-hashes the file and refuses it at the end if it changed after
// verification.
type Reader struct {
	path string
	f    *os.File
	dec  *decoder
	want signed
	err  error // sticky: io.EOF, or the error that ended reading
}

// signed is what the verified trailer vouches for.
type signed struct {
	size       int64
	sum        []byte
	entries    uint64
	generation uint64
}

// Open verifies the baseline at path against v and prepares to read it.
// Verification reads the whole file once before anything in it is decoded.
// A missing file gives an error wrapping fs.ErrNotExist; a file that fails
// verification gives a *TamperedError (matching ErrTampered).
func Open(path string, v note.Verifier) (*Reader, error) {
	if v == nil {
		return nil, fmt.Errorf("open baseline %s: no verifier key", path)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open baseline %s: no baseline yet (run `vigil baseline` to create one): %w", path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("open baseline %s: %w", path, err)
	}
	r, err := open(f, path, v)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func open(f *os.File, path string, v note.Verifier) (*Reader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open baseline %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open baseline %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	want, err := verify(f, path, v)
	if err != nil {
		return nil, err
	}
	// Decode from the same open file, so a rename over the path between
	// the passes can't swap in different bytes; in-place changes are
	// caught by the second hash.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("open baseline %s: %w", path, err)
	}
	dec, err := newDecoder(f, path)
	if err != nil {
		return nil, err
	}
	if dec.hdr.Generation != want.generation {
		dec.close()
		return nil, tampered(path, Corrupt, "header says generation %d, the signature says %d", dec.hdr.Generation, want.generation)
	}
	dec.hdr.Entries = want.entries
	return &Reader{path: path, f: f, dec: dec, want: want}, nil
}

// verify is the first pass: it walks the block framing (without
// decompressing anything), hashes the body, reads the trailer and checks
// the signature and the signed text against what it saw.
func verify(f io.Reader, path string, v note.Verifier) (signed, error) {
	src := &source{r: bufio.NewReaderSize(f, 64<<10), h: sha256.New()}
	version, err := readPreamble(src, path)
	if err != nil {
		return signed{}, err
	}
	var end frame
	for first := true; ; first = false {
		fr, err := readFrame(src, path, first)
		if err != nil {
			return signed{}, err
		}
		if fr.kind == kindEnd {
			end = fr
			break
		}
		if err := src.skip(fr.compLen); err != nil {
			if errors.Is(err, errShort) {
				return signed{}, tampered(path, Truncated, "file ends inside the block starting at byte %d (it claims %d stored bytes)", fr.off, fr.compLen)
			}
			return signed{}, fmt.Errorf("read baseline %s: %w", path, err)
		}
	}
	body := src.off
	sum := src.h.Sum(nil)

	// The trailer is not part of the hashed body: read it from the
	// buffered reader directly.
	tlen, err := binary.ReadUvarint(src.r)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return signed{}, tampered(path, Truncated, "file ends after the end block (byte %d), before the signature", body)
		}
		return signed{}, tampered(path, MalformedTrailer, "bad signature length at byte %d", body)
	}
	if tlen == 0 || tlen > maxTrailer {
		return signed{}, tampered(path, MalformedTrailer, "signature of %d bytes at byte %d (want 1 to %d)", tlen, body, maxTrailer)
	}
	msg := make([]byte, tlen)
	if n, err := io.ReadFull(src.r, msg); err != nil {
		return signed{}, tampered(path, Truncated, "file ends inside the signature (%d of %d bytes)", n, tlen)
	}
	if extra, _ := io.Copy(io.Discard, src.r); extra > 0 {
		return signed{}, tampered(path, TrailingData, "%d bytes after the signature", extra)
	}
	text, err := openNote(path, msg, v)
	if err != nil {
		return signed{}, err
	}
	s, err := parseSignedText(text)
	if err != nil {
		return signed{}, tampered(path, MalformedTrailer, "signed text: %v", err)
	}
	switch {
	case s.version != version:
		return signed{}, tampered(path, ContentMismatch, "signature is for format version %d, the file is version %d", s.version, version)
	case s.size != body:
		return signed{}, tampered(path, ContentMismatch, "signature covers %d bytes, the file has %d before its signature", s.size, body)
	case !bytes.Equal(s.sum, sum):
		return signed{}, tampered(path, ContentMismatch, "SHA-256 of the %d bytes before the signature is %x, the signature covers %x", body, sum, s.sum)
	case s.entries != end.count:
		return signed{}, tampered(path, ContentMismatch, "signature counts %d entries, the end block %d", s.entries, end.count)
	}
	return s.signed, nil
}

// openNote checks the trailer's signature and returns the signed text. It
// insists on the exact form a Writer produces (one signature, canonical
// base64), so that no byte of the trailer can change unnoticed.
func openNote(path string, msg []byte, v note.Verifier) (string, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			var by []string
			for _, s := range unverified.Note.UnverifiedSigs {
				by = append(by, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
			return "", tampered(path, UnknownSigner, "signed by key %s, not by the expected key %s+%08x (made on another host, or re-signed?)",
				strings.Join(by, ", "), v.Name(), v.KeyHash())
		case errors.As(err, &invalid):
			return "", tampered(path, SignatureMismatch, "signature by %s+%08x does not match the signed text", invalid.Name, invalid.Hash)
		}
		return "", tampered(path, MalformedTrailer, "%v", err)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 0 {
		return "", tampered(path, MalformedTrailer, "want exactly one signature, found %d", len(n.Sigs)+len(n.UnverifiedSigs))
	}
	s := n.Sigs[0]
	canonical := n.Text + "\n— " + s.Name + " " + s.Base64 + "\n"
	if _, err := base64.StdEncoding.Strict().DecodeString(s.Base64); err != nil || canonical != string(msg) {
		return "", tampered(path, MalformedTrailer, "signature trailer is not in canonical form")
	}
	return n.Text, nil
}

type parsedText struct {
	signed
	version int
}

// parseSignedText parses the text written by signedText, insisting on
// its exact canonical form.
func parseSignedText(text string) (parsedText, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	keys := []string{"vigil baseline v", "size ", "sha256 ", "entries ", "generation "}
	if len(lines) != len(keys) {
		return parsedText{}, fmt.Errorf("want %d lines, got %d", len(keys), len(lines))
	}
	vals := make([]string, len(keys))
	for i, k := range keys {
		v, ok := strings.CutPrefix(lines[i], k)
		if !ok {
			return parsedText{}, fmt.Errorf("line %d: want %q", i+1, k)
		}
		vals[i] = v
	}
	version, err1 := strconv.ParseUint(vals[0], 10, 16)
	size, err2 := strconv.ParseUint(vals[1], 10, 63)
	sum, err3 := hex.DecodeString(vals[2])
	entries, err4 := strconv.ParseUint(vals[3], 10, 64)
	generation, err5 := strconv.ParseUint(vals[4], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return parsedText{}, err
	}
	if len(sum) != sha256.Size {
		return parsedText{}, fmt.Errorf("sha256 of %d bytes, want %d", len(sum), sha256.Size)
	}
	s := parsedText{version: int(version), signed: signed{size: int64(size), sum: sum, entries: entries, generation: generation}}
	// Decimal and hex parsing accept forms (leading zeros, upper case)
	// that the writer never produces; refuse them.
	if signedText(s.version, s.size, s.sum, s.entries, s.generation) != text {
		return parsedText{}, fmt.Errorf("not in canonical form")
	}
	return s, nil
}

// Header returns the baseline's header.
func (r *Reader) Header() Header { return r.dec.hdr }

// Next returns the next entry and the ID of the acceptance that recorded
// it, or io.EOF after the last. If the file changed since Open verified
// it, Next returns an error matching ErrTampered instead of io.EOF.
func (r *Reader) Next() (*fim.Entry, uint32, error) {
	if r.err != nil {
		return nil, 0, r.err
	}
	e, tag, err := r.dec.next()
	if err == io.EOF {
		err = r.finish()
	}
	if err != nil {
		r.err = err
		return nil, 0, err
	}
	return e, tag, nil
}

// finish checks the second pass saw the bytes the first pass verified.
func (r *Reader) finish() error {
	if r.dec.src.off != r.want.size || !bytes.Equal(r.dec.src.h.Sum(nil), r.want.sum) {
		return tampered(r.path, ChangedWhileReading, "the file changed after its signature was checked")
	}
	return io.EOF
}

// Find returns the entry for path, scanning forward from the current
// position (so call it on a freshly opened Reader), and the ID of the
// acceptance that recorded it. Before returning, it reads the rest of the
// file to make sure the bytes did not change since verification. A path
// not in the baseline gives ErrNotFound. After Find, Next returns io.EOF.
func (r *Reader) Find(path string) (*fim.Entry, uint32, error) {
	for {
		e, tag, err := r.Next()
		if err == io.EOF {
			return nil, 0, fmt.Errorf("find %q in baseline %s: %w", path, r.path, ErrNotFound)
		}
		if err != nil {
			return nil, 0, err
		}
		c := fim.ComparePaths(e.Path, path)
		if c < 0 {
			continue
		}
		if err := r.dec.drain(); err != nil {
			r.err = err
			return nil, 0, err
		}
		if err := r.finish(); err != io.EOF {
			r.err = err
			return nil, 0, err
		}
		r.err = io.EOF
		if c > 0 {
			return nil, 0, fmt.Errorf("find %q in baseline %s: %w", path, r.path, ErrNotFound)
		}
		return e, tag, nil
	}
}

// Close releases the file.
func (r *Reader) Close() error {
	r.dec.close()
	if r.err == nil {
		r.err = errors.New("reader closed")
	}
	return r.f.Close()
}
