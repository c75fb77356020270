package baseline

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/atomicfile"
	"github.com/vigilfim/vigil/internal/fim"
)

// staleTempAge is how old a leftover temporary file must be before Commit
// removes it. A live writer touches its temp file continuously, so an hour
// without a write means its writer died (kill -9, power loss); waiting
// that long keeps a slow concurrent writer's file safe.
const staleTempAge = time.Hour

// tempPrefix returns the prefix of temporary files for the baseline at
// path. Temp files start with a dot and never end in the baseline's name,
// so nothing that opens the baseline by name can pick one up.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// Writer writes a new baseline. Entries must be added in strictly
// increasing fim.ComparePaths order. Nothing is visible at the baseline's
// path until Commit succeeds; Abort (or a crash) leaves the old baseline.
type Writer struct {
	path   string
	f      *os.File
	bw     *bufio.Writer
	hash   hash.Hash
	off    int64 // bytes of body written
	signer note.Signer
	hdr    Header
	enc    *zstd.Encoder
	codec  byte // codec for entry blocks: zstd, or stored in golden tests
	// version is the format version written: Version, or an older one
	// in tests that check older files are still read.
	version int

	raw   []byte // decoded payload of the open entry block
	comp  []byte
	n     uint64 // entries in the open block
	d     delta
	last  string
	count uint64
	err   error // sticky: once a write failed the file is useless
	done  bool
}

// Create starts writing a baseline that will replace path on Commit. The
// header's Version and Entries are ignored (they are set by the format and
// by the entries added); its acceptance history must start with acceptance
// 0, and every tag passed to Add must name one of its acceptances.
func Create(path string, s note.Signer, h Header) (*Writer, error) {
	return create(path, s, h, codecZstd)
}

func create(path string, s note.Signer, h Header, codec byte) (*Writer, error) {
	return createVersion(path, s, h, codec, Version)
}

// createVersion writes the given format version. Only tests write an older
// one: what it cannot hold (device numbers, in version 1) is left out.
func createVersion(path string, s note.Signer, h Header, codec byte, version int) (*Writer, error) {
	if version < minVersion || version > Version {
		return nil, fmt.Errorf("create baseline %s: unknown format version %d", path, version)
	}
	if s == nil {
		return nil, fmt.Errorf("create baseline %s: no signer", path)
	}
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("create baseline %s: %w", path, err)
	}
	h.Version, h.Entries = version, 0
	hdr := encodeHeader(&h)
	if len(hdr) > maxHeaderRaw {
		return nil, fmt.Errorf("create baseline %s: header of %d bytes is over the limit of %d", path, len(hdr), maxHeaderRaw)
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithWindowSize(1<<20),
		zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("create baseline %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix(path)+"*")
	if err != nil {
		return nil, fmt.Errorf("create baseline %s: %w", path, err)
	}
	w := &Writer{
		path: path, f: f, bw: bufio.NewWriterSize(f, 256<<10), hash: sha256.New(),
		signer: s, hdr: h, enc: enc, codec: codec, version: version,
	}
	// CreateTemp makes the file 0600 already; say so explicitly because
	// the baseline reveals the layout of the host.
	if err := f.Chmod(0o600); err != nil {
		w.Abort()
		return nil, fmt.Errorf("create baseline %s: %w", path, err)
	}
	var pre [preambleLen]byte
	copy(pre[:], magic)
	pre[len(magic)], pre[len(magic)+1] = byte(version>>8), byte(version&0xff)
	w.write(pre[:])
	w.writeBlock(kindHeader, 0, hdr, w.codec)
	if w.err != nil {
		err := w.err
		w.Abort()
		return nil, fmt.Errorf("create baseline %s: %w", path, err)
	}
	w.raw = make([]byte, 0, blockTarget+blockTarget/4)
	return w, nil
}

// write appends body bytes, hashing them.
func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.hash.Write(b)
	w.off += int64(len(b))
	if _, err := w.bw.Write(b); err != nil {
		w.err = err
	}
}

// writeBlock frames and writes one block, compressing its payload unless
// that would not make it smaller.
func (w *Writer) writeBlock(kind byte, count uint64, raw []byte, codec byte) {
	payload := raw
	if codec == codecZstd {
		w.comp = w.enc.EncodeAll(raw, w.comp[:0])
		if len(w.comp) < len(raw) {
			payload = w.comp
		} else {
			codec = codecStored
		}
	}
	var fr []byte
	fr = append(fr, kind)
	if kind == kindEntries {
		fr = appendUvarint(fr, count)
	}
	fr = appendUvarint(fr, uint64(len(raw)))
	fr = append(fr, codec)
	fr = appendUvarint(fr, uint64(len(payload)))
	w.write(fr)
	w.write(payload)
}

// Add appends an entry recorded by the acceptance with ID tag.
func (w *Writer) Add(e *fim.Entry, tag uint32) error {
	if w.done {
		return fmt.Errorf("add to baseline %s: writer is closed", w.path)
	}
	if w.err != nil {
		return fmt.Errorf("add to baseline %s: earlier write failed: %w", w.path, w.err)
	}
	if err := validEntry(e); err != nil {
		return fmt.Errorf("add %q to baseline: %w", e.Path, err)
	}
	if w.count > 0 && fim.ComparePaths(w.last, e.Path) >= 0 {
		return fmt.Errorf("add %q to baseline: not after %q in walk order", e.Path, w.last)
	}
	if _, ok := w.hdr.Acceptance(tag); !ok {
		return fmt.Errorf("add %q to baseline: tag %d names no acceptance in the header", e.Path, tag)
	}
	start, saved := len(w.raw), w.d
	w.raw = appendEntry(w.raw, &w.d, e, tag, w.version)
	if size := len(w.raw) - start; size > maxEntryRaw {
		// Only many huge xattrs get here. Undo, so that the entry is
		// refused but the baseline being written stays valid.
		w.raw, w.d = w.raw[:start], saved
		return fmt.Errorf("add %q to baseline: encoded entry of %d bytes is over the limit of %d", e.Path, size, maxEntryRaw)
	}
	if len(w.raw) > maxBlockRaw {
		// The entry does not fit in the open block: close the block
		// without it and start a new one holding it alone.
		w.raw = w.raw[:start]
		w.flush()
		w.d = delta{}
		w.raw = appendEntry(w.raw, &w.d, e, tag, w.version)
	}
	w.n++
	w.count++
	w.last = e.Path
	if len(w.raw) >= blockTarget {
		w.flush()
	}
	if w.err != nil {
		return fmt.Errorf("add %q to baseline: %w", e.Path, w.err)
	}
	return nil
}

// flush writes the open entry block, if any, and starts a new one.
func (w *Writer) flush() {
	if w.n == 0 {
		return
	}
	w.writeBlock(kindEntries, w.n, w.raw, w.codec)
	w.raw, w.n, w.d = w.raw[:0], 0, delta{}
	if cap(w.raw) > 2*blockTarget {
		w.raw = make([]byte, 0, blockTarget+blockTarget/4)
	}
}

// signedText is the text of the trailer's signed note.
func signedText(version int, size int64, sum []byte, entries, generation uint64) string {
	return fmt.Sprintf("vigil baseline v%d\nsize %d\nsha256 %x\nentries %d\ngeneration %d\n",
		version, size, sum, entries, generation)
}

// Commit finishes the file, signs it and atomically replaces the baseline
// at the path given to Create. On error the old baseline is untouched.
func (w *Writer) Commit() error {
	if w.done {
		return fmt.Errorf("commit baseline %s: writer is closed", w.path)
	}
	err := w.commit()
	if err != nil {
		w.Abort()
		return fmt.Errorf("commit baseline %s: %w", w.path, err)
	}
	return nil
}

func (w *Writer) commit() error {
	w.flush()
	end := appendUvarint([]byte{kindEnd}, w.count)
	w.write(end)
	if w.err != nil {
		return w.err
	}
	text := signedText(w.version, w.off, w.hash.Sum(nil), w.count, w.hdr.Generation)
	msg, err := note.Sign(&note.Note{Text: text}, w.signer)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	trailer := appendUvarint(nil, uint64(len(msg)))
	trailer = append(trailer, msg...)
	if _, err := w.bw.Write(trailer); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	tmp := w.f.Name()
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	if err := os.Rename(tmp, w.path); err != nil {
		os.Remove(tmp)
		return err
	}
	w.done = true
	w.enc.Close()
	dir := filepath.Dir(w.path)
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	// Best effort: a leftover temp file wastes space but harms nothing.
	removeStaleTemps(dir, tempPrefix(w.path), time.Now().Add(-staleTempAge))
	return nil
}

// Abort discards the new baseline. It is safe to call after Commit (it
// does nothing then) and more than once.
func (w *Writer) Abort() {
	if w.f != nil {
		name := w.f.Name()
		w.f.Close()
		os.Remove(name)
		w.f = nil
	}
	if !w.done {
		w.done = true
		w.enc.Close()
	}
}

// removeStaleTemps removes temp files named with prefix in dir that were
// last modified before cutoff.
func removeStaleTemps(dir, prefix string, cutoff time.Time) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
