package baseline

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/vigilfim/vigil/internal/fim"
)

// decoder decodes a baseline body from a stream. It trusts nothing: every
// length is bounded and every record checked, because Open runs it only
// after verification but the bytes may still change underneath (and the
// fuzz tests run it on hostile input directly).
type decoder struct {
	path    string
	version int // format version, from the preamble
	src     *source
	zd      *zstd.Decoder
	hdr     Header

	block    cursor // undecoded rest of the open entry block
	left     uint64 // entries left in the open block
	blockOff int64  // offset of the open block
	d        delta
	last     string
	seen     uint64 // entries decoded so far
	comp     []byte
	raw      []byte
	done     bool

	// onBlock, when set, is told about every entry block as it is read:
	// where its stored payload starts and what those bytes are. An Index
	// uses it to re-read single blocks later.
	onBlock func(fr frame, payloadOff int64, stored []byte)
}

// newDecoder reads the preamble and header block from r.
func newDecoder(r io.Reader, path string) (*decoder, error) {
	zd, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(maxHeaderRaw))
	if err != nil {
		return nil, fmt.Errorf("open baseline %s: %w", path, err)
	}
	d := &decoder{path: path, src: &source{r: bufio.NewReaderSize(r, 64<<10), h: sha256.New()}, zd: zd}
	if d.version, err = readPreamble(d.src, path); err != nil {
		d.close()
		return nil, err
	}
	fr, err := readFrame(d.src, path, true)
	if err != nil {
		d.close()
		return nil, err
	}
	raw, err := d.payload(fr)
	if err != nil {
		d.close()
		return nil, err
	}
	if d.hdr, err = decodeHeader(raw); err != nil {
		d.close()
		return nil, tampered(path, Corrupt, "header block at byte %d: %v", fr.off, err)
	}
	d.hdr.Version = d.version
	return d, nil
}

func (d *decoder) close() {
	if d.zd != nil {
		d.zd.Close()
		d.zd = nil
	}
}

// payload reads a block's payload and returns it decoded.
func (d *decoder) payload(fr frame) ([]byte, error) {
	var err error
	payloadOff := d.src.off
	if d.comp, err = d.src.full(d.comp, fr.compLen); err != nil {
		return nil, tampered(d.path, Truncated, "file ends inside the block starting at byte %d", fr.off)
	}
	if d.onBlock != nil && fr.kind == kindEntries {
		d.onBlock(fr, payloadOff, d.comp)
	}
	return d.decodePayload(fr)
}

// decodePayload decompresses the stored payload in d.comp.
func (d *decoder) decodePayload(fr frame) ([]byte, error) {
	var err error
	if fr.codec == codecStored {
		return d.comp, nil
	}
	// A zstd frame that declares its decoded size must declare the
	// block's. (The encoder leaves the size out of tiny frames; for those,
	// and for any further frames, the decoder's memory limit bounds the
	// output, and the length is checked after.)
	var zh zstd.Header
	if err := zh.Decode(d.comp); err != nil || zh.HasFCS && zh.FrameContentSize != fr.rawLen {
		return nil, tampered(d.path, Corrupt, "block at byte %d: zstd frame does not declare the block's %d decoded bytes", fr.off, fr.rawLen)
	}
	if uint64(cap(d.raw)) < fr.rawLen {
		d.raw = make([]byte, 0, fr.rawLen)
	}
	if d.raw, err = d.zd.DecodeAll(d.comp, d.raw[:0]); err != nil {
		return nil, tampered(d.path, Corrupt, "block at byte %d: decompress: %v", fr.off, err)
	}
	if uint64(len(d.raw)) != fr.rawLen {
		return nil, tampered(d.path, Corrupt, "block at byte %d decompresses to %d bytes, want %d", fr.off, len(d.raw), fr.rawLen)
	}
	return d.raw, nil
}

// next returns the next entry, or io.EOF after the end block (with the
// entry count checked against it).
func (d *decoder) next() (*fim.Entry, uint32, error) {
	if d.done {
		return nil, 0, io.EOF
	}
	for d.left == 0 {
		if len(d.block.b) != 0 {
			return nil, 0, tampered(d.path, Corrupt, "block at byte %d has %d bytes after its last entry", d.blockOff, len(d.block.b))
		}
		fr, err := readFrame(d.src, d.path, false)
		if err != nil {
			return nil, 0, err
		}
		if fr.kind == kindEnd {
			if fr.count != d.seen {
				return nil, 0, tampered(d.path, Corrupt, "end block at byte %d counts %d entries, the blocks hold %d", fr.off, fr.count, d.seen)
			}
			d.done = true
			return nil, 0, io.EOF
		}
		raw, err := d.payload(fr)
		if err != nil {
			return nil, 0, err
		}
		d.block, d.left, d.blockOff, d.d = cursor{b: raw}, fr.count, fr.off, delta{}
	}
	corrupt := func(err error) error {
		return tampered(d.path, Corrupt, "block at byte %d, entry %d: %v", d.blockOff, d.seen, err)
	}
	e, tag, err := decodeEntry(&d.block, &d.d, d.version)
	if err != nil {
		return nil, 0, corrupt(err)
	}
	if d.seen > 0 && fim.ComparePaths(d.last, e.Path) >= 0 {
		return nil, 0, corrupt(fmt.Errorf("path %q is not after %q in walk order", e.Path, d.last))
	}
	if _, ok := d.hdr.Acceptance(tag); !ok {
		return nil, 0, corrupt(fmt.Errorf("tag %d names no acceptance", tag))
	}
	d.left--
	d.seen++
	d.last = e.Path
	return e, tag, nil
}

// drain reads the rest of the body without decoding entries, so that the
// whole body has been hashed.
func (d *decoder) drain() error {
	if d.done {
		return nil
	}
	d.left, d.block = 0, cursor{}
	for {
		fr, err := readFrame(d.src, d.path, false)
		if err != nil {
			return err
		}
		if fr.kind == kindEnd {
			d.done = true
			return nil
		}
		if err := d.src.skip(fr.compLen); err != nil {
			if errors.Is(err, errShort) {
				return tampered(d.path, Truncated, "file ends inside the block starting at byte %d", fr.off)
			}
			return err
		}
	}
}
