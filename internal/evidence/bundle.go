package evidence

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/mod/sumdb/note"
)

// Bundle format constants (docs/evidence.md, "Bundle").
const (
	BundleFormat  = "vigil-evidence-bundle"
	BundleVersion = 1
	// maxBundleLine bounds one line: a base64 leaf at MaxLeafLen plus a
	// 64-hash proof and the JSON around them.
	maxBundleLine = MaxLeafLen*4/3 + 64*48 + 4096
	// maxProofLen is the longest inclusion proof in a tree of 2^64 leaves.
	maxProofLen = 64
)

// ErrNotCheckpointed is returned by Export when the requested range ends
// beyond the latest checkpoint: sign one first (Checkpointer.Checkpoint).
var ErrNotCheckpointed = errors.New("range not covered by a checkpoint")

// bundleHeader is the first line of a bundle.
type bundleHeader struct {
	Format     string `json:"format"`
	Version    int    `json:"version"`
	Origin     string `json:"origin"`
	PublicKey  string `json:"public_key"`
	Checkpoint string `json:"checkpoint"`
	From       uint64 `json:"from"`
	To         uint64 `json:"to"`
}

// bundleLine is a record line or, with End set, the trailer.
type bundleLine struct {
	Index    *uint64  `json:"index,omitempty"`
	Leaf     []byte   `json:"leaf,omitempty"`
	LeafHash []byte   `json:"leaf_hash,omitempty"`
	Proof    [][]byte `json:"proof,omitempty"`
	End      bool     `json:"end,omitempty"`
	Records  *uint64  `json:"records,omitempty"`
}

// ExportStore is what Export reads.
type ExportStore interface {
	NodeReader
	LeafScanner
	CheckpointStore
}

// ExportOptions select what to export.
type ExportOptions struct {
	// From and To select records [From, To). To == 0 means up to the
	// latest checkpoint.
	From, To uint64
	// PublicKey is the log's verifier key in note format
	// ("name+hash+base64"); it is put into the bundle and used to check
	// the checkpoint before exporting.
	PublicKey string
	// Origin of the checkpoints; empty means the key's name.
	Origin string
}

// ExportSummary says what a bundle holds.
type ExportSummary struct {
	From, To   uint64
	Checkpoint Checkpoint
	Pruned     uint64
}

// Export writes a self-contained bundle of records [From, To) to w: the
// records, an inclusion proof for each against the latest checkpoint, that
// checkpoint and the public key. Every proof is checked before it is
// written, so a damaged store fails the export instead of producing a bundle
// that fails later. Memory use does not grow with the range.
func Export(ctx context.Context, store ExportStore, w io.Writer, opts ExportOptions) (ExportSummary, error) {
	v, err := note.NewVerifier(opts.PublicKey)
	if err != nil {
		return ExportSummary{}, fmt.Errorf("export: public key: %w", err)
	}
	origin := opts.Origin
	if origin == "" {
		origin = v.Name()
	}
	sc, err := store.LatestCheckpoint(ctx)
	if errors.Is(err, ErrNotFound) {
		return ExportSummary{}, fmt.Errorf("export: %w: the log has no checkpoint", ErrNotCheckpointed)
	}
	if err != nil {
		return ExportSummary{}, fmt.Errorf("export: %w", err)
	}
	cp, err := OpenCheckpoint(sc.Note, origin, v)
	if err != nil {
		return ExportSummary{}, fmt.Errorf("export: latest checkpoint #%d: %w", sc.Seq, err)
	}
	to := opts.To
	if to == 0 {
		to = cp.Size
	}
	if to > cp.Size {
		return ExportSummary{}, fmt.Errorf("export: %w: records up to %d requested, the latest checkpoint covers %d", ErrNotCheckpointed, to, cp.Size)
	}
	if opts.From >= to {
		return ExportSummary{}, fmt.Errorf("export: empty range [%d, %d)", opts.From, to)
	}
	sum := ExportSummary{From: opts.From, To: to, Checkpoint: cp}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	hdr := bundleHeader{Format: BundleFormat, Version: BundleVersion, Origin: origin, PublicKey: opts.PublicKey,
		Checkpoint: string(cp.Note), From: opts.From, To: to}
	if err := enc.Encode(hdr); err != nil {
		return sum, fmt.Errorf("export: write header: %w", err)
	}
	next := opts.From
	err = store.ScanLeaves(ctx, opts.From, to, func(l *StoredLeaf) error {
		if l.Index != next {
			return fmt.Errorf("record %d is missing from the store (run verify)", next)
		}
		h := l.Hash
		if l.Leaf != nil {
			h = LeafHash(l.Leaf)
		}
		p, err := InclusionProof(ctx, store, l.Index, cp.Size)
		if err != nil {
			return err
		}
		if err := VerifyInclusion(l.Index, cp.Size, h, p, cp.Root); err != nil {
			return fmt.Errorf("record %d is not in checkpoint #%d (run verify): %w", l.Index, sc.Seq, err)
		}
		idx := l.Index
		line := bundleLine{Index: &idx, Proof: p}
		if l.Leaf != nil {
			line.Leaf = l.Leaf
		} else {
			line.LeafHash = h
			sum.Pruned++
		}
		next++
		return enc.Encode(line)
	})
	if err != nil {
		return sum, fmt.Errorf("export: %w", err)
	}
	if next != to {
		return sum, fmt.Errorf("export: records [%d, %d) are missing from the store (run verify)", next, to)
	}
	n := to - opts.From
	if err := enc.Encode(bundleLine{End: true, Records: &n}); err != nil {
		return sum, fmt.Errorf("export: write trailer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return sum, fmt.Errorf("export: %w", err)
	}
	return sum, nil
}

// BundleOptions say what a bundle must match.
type BundleOptions struct {
	// TrustedKey, if set, is the verifier key the auditor obtained
	// independently; the bundle's key must equal it. Without it the bundle
	// only proves it is self-consistent under the key it carries
	// (BundleReport.PublicKey says which).
	TrustedKey string
	// Origin, if set, must equal the bundle's origin.
	Origin string
}

// BundleRecord is one record of a verified bundle.
type BundleRecord struct {
	Index    uint64
	LeafHash []byte
	// Record is the decoded record; zero when Pruned.
	Record Record
	// Pruned reports that only the leaf hash was exported.
	Pruned bool
}

// BundleReport summarises a verified bundle.
type BundleReport struct {
	Origin     string
	PublicKey  string
	Checkpoint Checkpoint
	From, To   uint64
	Pruned     uint64
}

// VerifyBundle checks a bundle written by Export, offline: the checkpoint's
// signature under the bundle's key (and that key against opts.TrustedKey),
// each record's encoding and position, and each inclusion proof. fn, if not
// nil, receives each record after its proof verified. A bundle problem is a
// *VerifyError naming the first bad index.
func VerifyBundle(r io.Reader, opts BundleOptions, fn func(BundleRecord) error) (BundleReport, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxBundleLine)
	var rep BundleReport
	lineNo := 0
	nextLine := func() ([]byte, error) {
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				if errors.Is(err, bufio.ErrTooLong) {
					return nil, bundleProblem(-1, "line %d is longer than %d bytes", lineNo+1, maxBundleLine)
				}
				return nil, fmt.Errorf("read bundle: %w", err)
			}
			return nil, io.EOF
		}
		lineNo++
		return sc.Bytes(), nil
	}
	b, err := nextLine()
	if err == io.EOF {
		return rep, bundleProblem(-1, "empty bundle")
	}
	if err != nil {
		return rep, err
	}
	var hdr bundleHeader
	if err := strictUnmarshal(b, &hdr); err != nil {
		return rep, bundleProblem(-1, "line 1: header: %v", err)
	}
	if hdr.Format != BundleFormat || hdr.Version != BundleVersion {
		return rep, bundleProblem(-1, "line 1: format %q version %d, want %q version %d", hdr.Format, hdr.Version, BundleFormat, BundleVersion)
	}
	if opts.TrustedKey != "" && hdr.PublicKey != opts.TrustedKey {
		return rep, bundleProblem(-1, "the bundle's public key %q is not the trusted key", hdr.PublicKey)
	}
	if opts.Origin != "" && hdr.Origin != opts.Origin {
		return rep, bundleProblem(-1, "origin %q, want %q", hdr.Origin, opts.Origin)
	}
	v, err := note.NewVerifier(hdr.PublicKey)
	if err != nil {
		return rep, bundleProblem(-1, "line 1: public key: %v", err)
	}
	cp, err := OpenCheckpoint([]byte(hdr.Checkpoint), hdr.Origin, v)
	if err != nil {
		return rep, &VerifyError{Index: -1, Reason: ReasonBadCheckpoint, Detail: fmt.Sprintf("bundle checkpoint: %s", checkpointCause(err))}
	}
	if hdr.From >= hdr.To || hdr.To > cp.Size {
		return rep, bundleProblem(-1, "range [%d, %d) is empty or beyond the checkpoint size %d", hdr.From, hdr.To, cp.Size)
	}
	rep = BundleReport{Origin: hdr.Origin, PublicKey: hdr.PublicKey, Checkpoint: cp, From: hdr.From, To: hdr.To}
	next := hdr.From
	for {
		b, err := nextLine()
		if err == io.EOF {
			return rep, bundleProblem(int64(next), "bundle ends without its trailer: truncated")
		}
		if err != nil {
			return rep, err
		}
		var line bundleLine
		if err := strictUnmarshal(b, &line); err != nil {
			return rep, bundleProblem(int64(next), "line %d: %v", lineNo, err)
		}
		if line.End {
			if line.Index != nil || line.Leaf != nil || line.LeafHash != nil || line.Proof != nil || line.Records == nil {
				return rep, bundleProblem(int64(next), "line %d: malformed trailer", lineNo)
			}
			if next != hdr.To || *line.Records != hdr.To-hdr.From {
				return rep, bundleProblem(int64(next), "trailer after %d records, header promised %d: records missing", next-hdr.From, hdr.To-hdr.From)
			}
			if _, err := nextLine(); err != io.EOF {
				if err != nil {
					return rep, err
				}
				return rep, bundleProblem(-1, "line %d: data after the trailer", lineNo)
			}
			return rep, nil
		}
		br, err := checkBundleRecord(&line, next, cp, lineNo)
		var ve *VerifyError
		if errors.As(err, &ve) && ve.Reason == ReasonMissing {
			// Look one line ahead: the record that belongs here may come
			// next, which makes this a reorder rather than a deletion.
			if b, lerr := nextLine(); lerr == nil {
				var ahead bundleLine
				if strictUnmarshal(b, &ahead) == nil && ahead.Index != nil && *ahead.Index == next {
					return rep, recordProblem(next, ReasonReordered, "bundle line %d holds record %d and line %d holds record %d", lineNo-1, *line.Index, lineNo, next)
				}
			}
		}
		if err != nil {
			return rep, err
		}
		if br.Pruned {
			rep.Pruned++
		}
		if fn != nil {
			if err := fn(br); err != nil {
				return rep, err
			}
		}
		next++
	}
}

func checkBundleRecord(line *bundleLine, next uint64, cp Checkpoint, lineNo int) (BundleRecord, error) {
	if line.Index == nil || line.Records != nil {
		return BundleRecord{}, bundleProblem(int64(next), "line %d: not a record line", lineNo)
	}
	if *line.Index != next {
		if *line.Index > next {
			return BundleRecord{}, recordProblem(next, ReasonMissing, "bundle line %d holds record %d, record %d is missing", lineNo, *line.Index, next)
		}
		return BundleRecord{}, recordProblem(next, ReasonReordered, "bundle line %d holds record %d where %d belongs", lineNo, *line.Index, next)
	}
	if len(line.Proof) > maxProofLen {
		return BundleRecord{}, recordProblem(next, ReasonBadProof, "proof has %d hashes, more than %d", len(line.Proof), maxProofLen)
	}
	br := BundleRecord{Index: next}
	switch {
	case line.Leaf != nil && line.LeafHash == nil:
		claim, rec, err := DecodeLeaf(line.Leaf)
		if err != nil {
			return br, recordProblem(next, ReasonMalformed, "%v", err)
		}
		if claim != next {
			return br, recordProblem(next, ReasonReordered, "the leaf at bundle position %d is record %d", next, claim)
		}
		br.Record, br.LeafHash = rec, LeafHash(line.Leaf)
	case line.Leaf == nil && len(line.LeafHash) == 32:
		br.Pruned, br.LeafHash = true, line.LeafHash
	default:
		return br, bundleProblem(int64(next), "line %d: a record line needs a leaf or a 32-byte leaf_hash", lineNo)
	}
	if err := VerifyInclusion(next, cp.Size, br.LeafHash, line.Proof, cp.Root); err != nil {
		return br, recordProblem(next, ReasonBadProof, "the inclusion proof does not lead from the record to the root of the checkpoint (size %d)", cp.Size)
	}
	return br, nil
}

func bundleProblem(index int64, format string, args ...any) *VerifyError {
	return &VerifyError{Index: index, Reason: ReasonBadBundle, Detail: fmt.Sprintf(format, args...)}
}

// strictUnmarshal decodes one JSON value, refusing unknown fields and
// trailing data.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}
