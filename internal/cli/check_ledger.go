package cli

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/vigilfim/vigil/internal/atomicfile"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fim"
)

// checkLedger remembers which of a check's per-path records (changes, and
// their change-control settlements) are already in the evidence log, so
// that a change nobody accepts is recorded once, not once per check run:
// a cron check every 15 minutes would otherwise append the same record
// 96 times a day. The check still reports the change every time (output,
// exit status); only the repeated evidence record is left out, and the
// run's own record counts it.
//
// "Already recorded" is never taken on trust: the ledger file only names
// log indices, and each is read back from the log and its body's SHA-256
// compared before it counts. A ledger that was edited, a log rolled back
// or replaced, or a pruned payload therefore makes the record be appended
// again, never suppresses one. The ledger is written only after the run's
// records and checkpoint are durable, so a crash in between costs a
// duplicate record, never a missing one.
type checkLedger struct {
	file string
	// prior holds, per path, the records verified to be in the log.
	prior map[string][]ledgerRecord
	// next is what this run recorded or found already recorded.
	next map[string][]ledgerRecord

	counts map[string]*ledgerCount // by evidence kind
}

// ledgerCount counts a run's records of one kind.
type ledgerCount struct {
	Recorded        int `json:"recorded"`
	AlreadyRecorded int `json:"already_recorded"`
}

// ledgerRecord is one record in the evidence log: where it is and the
// SHA-256 of its body, which holds the whole change record (path, old and
// new state, rule, verdict), so any difference in the change gives
// another digest.
type ledgerRecord struct {
	SHA256 string `json:"sha256"`
	Index  uint64 `json:"index"`
}

// ledgerFile is the ledger's on-disk form (JSON). Paths are Linux byte
// strings, so each is written as the change record writes them.
type ledgerFile struct {
	Version int          `json:"version"`
	Paths   []ledgerPath `json:"paths"`
}

type ledgerPath struct {
	Path    string         `json:"path"`
	PathB64 string         `json:"path_b64,omitempty"`
	Records []ledgerRecord `json:"records"`
}

const (
	ledgerVersion = 1
	// maxLedgerBytes bounds what is read: about two million outstanding
	// changes. A larger file is ignored (everything is recorded again).
	maxLedgerBytes = 512 << 20
	// ledgerGap is the largest gap between named indices read in one
	// range: reading up to this many unneeded records is cheaper than
	// another query.
	ledgerGap = 256
)

// checkLedgerFile is the ledger of the baseline's checks, beside it.
func checkLedgerFile(sp statePaths) string { return sp.db + ".check-records" }

// loadCheckLedger reads the ledger and keeps only the records the log
// still holds unchanged. A missing ledger is an empty one. A ledger that
// can't be used is reported as warn and replaced by an empty one: the cost
// is records appended again, which is safe; err is for failures to read
// the log.
func loadCheckLedger(ctx context.Context, file string, log evidence.LeafScanner) (l *checkLedger, warn, err error) {
	l = &checkLedger{file: file, prior: map[string][]ledgerRecord{}, next: map[string][]ledgerRecord{}, counts: map[string]*ledgerCount{}}
	lf, warn := readLedgerFile(file)
	if lf == nil {
		return l, warn, nil
	}
	// Read the named records back in index order, in runs of nearby
	// indices: one check's records sit together in the log, so a ledger
	// of many changes costs a few range reads rather than one per record.
	type named struct {
		path string
		r    ledgerRecord
	}
	var all []named
	dropped := 0
	for _, p := range lf.Paths {
		path, derr := fim.DecodeName(p.Path, p.PathB64)
		if derr != nil {
			dropped += len(p.Records)
			continue
		}
		for _, r := range p.Records {
			if r.Index > math.MaxInt64 { // no store holds that many; SQL integers are signed
				dropped++
				continue
			}
			all = append(all, named{path, r})
		}
	}
	slices.SortFunc(all, func(a, b named) int { return cmp.Compare(a.r.Index, b.r.Index) })
	for len(all) > 0 {
		n := 1
		for n < len(all) && all[n].r.Index-all[n-1].r.Index <= ledgerGap {
			n++
		}
		run := all[:n]
		all = all[n:]
		held := make(map[uint64]string, n) // index -> body digest
		from, to := run[0].r.Index, run[n-1].r.Index+1
		err := log.ScanLeaves(ctx, from, to, func(sl *evidence.StoredLeaf) error {
			if sl.Leaf == nil {
				return nil // pruned: the record must be appended again
			}
			idx, rec, err := evidence.DecodeLeaf(sl.Leaf)
			if err != nil || idx != sl.Index {
				return nil // Verify reports a damaged log; here it only means "not held"
			}
			held[idx] = bodyDigest(rec.Body)
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("read evidence records %d to %d named by %s: %w", from, to-1, file, err)
		}
		for _, nr := range run {
			if held[nr.r.Index] != nr.r.SHA256 || slices.Contains(l.prior[nr.path], nr.r) {
				if held[nr.r.Index] != nr.r.SHA256 {
					dropped++
				}
				continue
			}
			l.prior[nr.path] = append(l.prior[nr.path], nr.r)
		}
	}
	if dropped > 0 {
		warn = fmt.Errorf("%d records named by %s are not in the evidence log as named (log rolled back, pruned or replaced, or the file edited)", dropped, file)
	}
	return l, warn, nil
}

func readLedgerFile(file string) (*ledgerFile, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLedgerBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", file, err)
	case len(b) > maxLedgerBytes:
		return nil, fmt.Errorf("ignore %s: larger than %d bytes", file, maxLedgerBytes)
	}
	var lf ledgerFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lf); err != nil {
		return nil, fmt.Errorf("ignore %s: %w", file, err)
	}
	if lf.Version != ledgerVersion {
		return nil, fmt.Errorf("ignore %s: version %d, want %d", file, lf.Version, ledgerVersion)
	}
	return &lf, nil
}

func bodyDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// record appends rec for path through appendFn unless an identical record
// for path is already in the log. Either way the record is remembered for
// the next run.
func (l *checkLedger) record(path string, rec evidence.Record, appendFn func(evidence.Record) (uint64, error)) error {
	c := l.counts[rec.Kind]
	if c == nil {
		c = &ledgerCount{}
		l.counts[rec.Kind] = c
	}
	d := bodyDigest(rec.Body)
	if i := slices.IndexFunc(l.prior[path], func(r ledgerRecord) bool { return r.SHA256 == d }); i >= 0 {
		c.AlreadyRecorded++
		l.remember(path, l.prior[path][i])
		return nil
	}
	idx, err := appendFn(rec)
	if err != nil {
		return err
	}
	c.Recorded++
	l.remember(path, ledgerRecord{SHA256: d, Index: idx})
	return nil
}

func (l *checkLedger) remember(path string, r ledgerRecord) {
	if !slices.Contains(l.next[path], r) {
		l.next[path] = append(l.next[path], r)
	}
}

// count returns the counts of kind for the run's own record.
func (l *checkLedger) count(kind string) ledgerCount {
	if c := l.counts[kind]; c != nil {
		return *c
	}
	return ledgerCount{}
}

// save writes what the next run needs: this run's records, and the earlier
// ones of paths outside the trees this run checked (a check of one
// subtree says nothing about the others). A path inside them that no
// longer changes (accepted, or changed back) is forgotten, so if it
// changes again the same way later, that is recorded again.
func (l *checkLedger) save(checked []string) error {
	keep := make(map[string][]ledgerRecord, len(l.next))
	for p, rs := range l.next {
		keep[p] = rs
	}
	for p, rs := range l.prior {
		if _, ok := keep[p]; ok || slices.ContainsFunc(checked, func(root string) bool { return fim.IsWithin(p, root) }) {
			continue
		}
		keep[p] = rs
	}
	lf := ledgerFile{Version: ledgerVersion, Paths: make([]ledgerPath, 0, len(keep))}
	for p, rs := range keep {
		lp := ledgerPath{Records: rs}
		lp.Path, lp.PathB64 = fim.EncodeName(p)
		lf.Paths = append(lf.Paths, lp)
	}
	// Sorted, so the file is the same for the same state.
	slices.SortFunc(lf.Paths, func(a, b ledgerPath) int {
		return strings.Compare(a.Path+"\x00"+a.PathB64, b.Path+"\x00"+b.PathB64)
	})
	b, err := json.Marshal(lf)
	if err != nil {
		return fmt.Errorf("encode %s: %w", l.file, err)
	}
	if err := atomicfile.WriteFile(l.file, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save the record of evidence already written: %w", err)
	}
	return nil
}
