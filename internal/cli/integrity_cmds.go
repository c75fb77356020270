package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/baseline"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/integrity"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/record"
	"github.com/vigilfim/vigil/internal/scan"
	"github.com/vigilfim/vigil/internal/signing"
	"github.com/vigilfim/vigil/internal/store"
)

// journalFlags choose where evidence goes.
type journalFlags struct {
	store      string
	noEvidence bool
	witness    []string
}

func (f *journalFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.store, "store", "", "evidence store: a SQLite file (default vigil.sqlite beside the baseline) or a postgres:// URL")
	c.Flags().BoolVar(&f.noEvidence, "no-evidence", false, "do not append to the evidence log (read-only use)")
	c.Flags().StringSliceVar(&f.witness, "witness", nil, "also copy each evidence checkpoint to this witness directory (repeatable)")
}

// open opens the evidence journal, or returns nil when evidence is off.
// Witnesses are the policy's and the command line's.
func (f *journalFlags) open(ctx context.Context, sp statePaths, key *signing.Key, pol *policy.Policy) (*journal, error) {
	if f.noEvidence {
		return nil, nil
	}
	return openJournal(ctx, sp, f.store, key, witnesses(pol, f.witness), pol.Evidence.CheckpointInterval)
}

// witnesses joins the policy's witness directories and extra ones.
func witnesses(pol *policy.Policy, extra []string) []string {
	var w []string
	if pol != nil {
		w = append(w, pol.Evidence.Witness...)
	}
	for _, d := range extra {
		if !slices.Contains(w, d) {
			w = append(w, d)
		}
	}
	return w
}

// stateFlags are the flags every command that touches the baseline has.
type stateFlags struct {
	db, key, pubkey string
}

func (f *stateFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.db, "db", "", "baseline file (default /var/lib/vigil/baseline.vgl for root, the XDG state directory otherwise)")
	c.Flags().StringVar(&f.key, "key", "", "signing key (default vigil.key beside the baseline; created on first use)")
}

func (f *stateFlags) registerPubkey(c *cobra.Command) {
	c.Flags().StringVar(&f.pubkey, "pubkey", "", "verify the baseline with this public key file instead of the signing key")
}

func (f *stateFlags) resolve() (statePaths, error) { return resolveState(f.db, f.key) }

// signingKey loads the host key, creating it on first use.
func signingKey(sp statePaths) (*signing.Key, error) {
	host, _ := os.Hostname()
	return signing.LoadOrCreate(sp.key, "vigil-"+host)
}

// verifierFor returns what checks the baseline's signature. It never
// creates a key: a missing key means the baseline can't be trusted.
func verifierFor(sp statePaths, pubkey string) (note.Verifier, error) {
	if pubkey != "" {
		return signing.LoadVerifier(pubkey)
	}
	k, err := signing.Load(sp.key)
	if err != nil {
		return nil, fmt.Errorf("load signing key to verify the baseline: %w", err)
	}
	return k.Verifier(), nil
}

// openBaseline opens and verifies the baseline, turning "not there" into
// advice.
func openBaseline(sp statePaths, pubkey string) (*baseline.Reader, error) {
	if _, err := os.Stat(sp.db); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no baseline at %s: create one with 'vigil baseline'", sp.db)
	}
	v, err := verifierFor(sp, pubkey)
	if err != nil {
		return nil, err
	}
	return baseline.Open(sp.db, v)
}

// policyFor decides the policy of a new baseline: a policy file, paths on
// the command line, both (the policy narrowed to the paths), or, with
// neither, the built-in policy for a Linux host.
func policyFor(file string, paths []string) (*policy.Policy, error) {
	abs, err := absPaths(paths)
	if err != nil {
		return nil, err
	}
	switch {
	case file != "":
		p, err := policy.Load(file)
		if err != nil {
			return nil, err
		}
		if len(abs) > 0 {
			return p.Restrict(abs)
		}
		return p, nil
	case len(abs) > 0:
		return policy.ForPaths(abs), nil
	}
	return policy.Default(), nil
}

// policyOf returns the policy a baseline was made with, or the --policy
// file when given.
func policyOf(r *baseline.Reader, file string) (*policy.Policy, error) {
	return policyOfHeader(r.Header(), file)
}

func policyOfHeader(h baseline.Header, file string) (*policy.Policy, error) {
	if file != "" {
		return policy.Load(file)
	}
	p, err := policy.Parse("(policy stored in baseline)", h.Policy)
	if err != nil {
		return nil, fmt.Errorf("read policy stored in baseline: %w", err)
	}
	return p, nil
}

func absPaths(paths []string) ([]string, error) {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", p, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func baselineActor() baseline.Actor {
	a := currentActor()
	return baseline.Actor{UID: a.UID, User: a.User, AUID: a.AUID, LoginUser: a.LoginUser}
}

// results adapts a sink to integrity.Results.
type results struct{ s sink }

func (r results) Change(c *fim.Change, rule *policy.Rule) error {
	return r.s.change(record.New(c, rule), c)
}

func (r results) Problem(path string, err error) error {
	return r.s.problem(record.NewProblem(path, err), path, err)
}

func newSink(e *env, asJSON bool) (sink, error) {
	if asJSON {
		return newJSONSink(e.stdout), nil
	}
	return newHumanSink(e.stdout, e.stdoutTTY)
}

func progressFunc(p *progress) func(scan.Progress) {
	return func(s scan.Progress) {
		p.update(progressSample{Entries: s.Entries, Files: s.Files, Bytes: s.BytesHashed, Elapsed: s.Elapsed, Total: s.OldEntries})
	}
}

func newBaselineCmd(e *env) *cobra.Command {
	var sf stateFlags
	var jf journalFlags
	var policyFile, note string
	var workers int
	c := &cobra.Command{
		Use:   "baseline [--db FILE] [--policy FILE] [PATH...]",
		Short: "Scan and store a new signed baseline",
		Long: `Scans the trees named by the policy (or the PATHs, with every attribute and
SHA-256, when no policy is given; the built-in Linux host policy when neither
is) and stores a new signed baseline, replacing the previous one atomically.`,
		RunE: func(c *cobra.Command, args []string) error {
			sp, err := sf.resolve()
			if err != nil {
				return err
			}
			pol, err := policyFor(policyFile, args)
			if err != nil {
				return err
			}
			src, err := policy.Marshal(pol)
			if err != nil {
				return fmt.Errorf("encode policy: %w", err)
			}
			if err := os.MkdirAll(filepath.Dir(sp.db), 0o700); err != nil {
				return fmt.Errorf("create state directory: %w", err)
			}
			key, err := signingKey(sp)
			if err != nil {
				return err
			}
			unlock, err := lockBaseline(sp)
			if err != nil {
				return err
			}
			defer unlock()
			j, err := jf.open(c.Context(), sp, key, pol)
			if err != nil {
				return err
			}
			defer j.close(c.Context())
			prog := newProgress(e.stderr, e.stderrTTY, 0)
			pr := &problemPrinter{e: e}
			sum, err := integrity.Build(c.Context(), sp.db, key.Signer(), pol, src, baselineActor(), note,
				integrity.Options{Workers: workers, Progress: progressFunc(prog)}, pr)
			prog.done()
			if err != nil {
				return err
			}
			if j != nil {
				how := "baseline"
				if err := j.record(c.Context(), evidence.KindPolicyLoad, e.now(), "", policyEvidence(src, pol, how)); err != nil {
					return err
				}
				if err := j.record(c.Context(), evidence.KindAcceptance, e.now(), "", map[string]any{
					"action": "baseline", "baseline": sp.db, "generation": sum.Generation, "roots": sum.Roots,
					"entries": sum.Entries, "problems": pr.n, "note": note,
				}); err != nil {
					return err
				}
				if err := j.close(c.Context()); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stdout, "baseline %s: %d entries under %s; %d files hashed (%s) in %.1fs\n",
				sp.db, sum.Entries, joinRoots(sum.Roots), sum.FilesHashed, formatBytes(sum.BytesHashed), float64(sum.DurationMS)/1000)
			if pr.n > 0 {
				return &exitError{code: ExitIncomplete, err: fmt.Errorf("%d entries could not be read completely; they are recorded with what could be read", pr.n)}
			}
			return nil
		},
	}
	sf.register(c)
	c.Flags().StringVar(&policyFile, "policy", "", "policy file (see docs/policy.md)")
	jf.register(c)
	c.Flags().StringVar(&note, "note", "initial baseline", "why this baseline is made, recorded with it")
	c.Flags().IntVar(&workers, "workers", 0, "concurrent stat and hash workers (default: scanner's choice)")
	return c
}

// problemPrinter reports unreadable entries on stderr, one line each.
type problemPrinter struct {
	e *env
	n int
}

func (p *problemPrinter) Change(*fim.Change, *policy.Rule) error { return nil }

func (p *problemPrinter) Problem(path string, err error) error {
	p.n++
	fmt.Fprintf(p.e.stderr, "vigil: %s: %v\n", displayPath(path), err)
	return nil
}

func newCheckCmd(e *env) *cobra.Command {
	var sf stateFlags
	var jf journalFlags
	var policyFile string
	var asJSON, full bool
	var workers int
	c := &cobra.Command{
		Use:   "check [--db FILE] [--policy FILE] [--json] [--full] [PATH...]",
		Short: "Compare the monitored trees with the baseline",
		Long: `Compares the trees the baseline covers (or only the PATHs given) with it and
reports every difference. Files whose size, times, inode and device are
unchanged are not re-read (content, extended attributes, ACL: each of
those changes moves ctime) unless --full is given.

Every change is reported on every run. The evidence log gets each change once
while it stays the same (a ledger beside the baseline names the records
already written) and one record per run with counts (docs/evidence.md).

Exit status: 0 no differences, 1 differences found, 2 error (including a
missing, damaged or tampered baseline), 3 some entries could not be examined.`,
		RunE: func(c *cobra.Command, args []string) error {
			sp, err := sf.resolve()
			if err != nil {
				return err
			}
			r, err := openBaseline(sp, sf.pubkey)
			if err != nil {
				return err
			}
			defer r.Close()
			pol, err := policyOf(r, policyFile)
			if err != nil {
				return err
			}
			limit, err := absPaths(args)
			if err != nil {
				return err
			}
			s, err := newSink(e, asJSON)
			if err != nil {
				return err
			}
			// With only a public key (an auditor's check) nothing can be
			// signed, so nothing is recorded.
			var j *journal
			var ledger *checkLedger
			if sf.pubkey == "" {
				key, err := signing.Load(sp.key)
				if err != nil {
					return fmt.Errorf("load signing key: %w", err)
				}
				if j, err = jf.open(c.Context(), sp, key, pol); err != nil {
					return err
				}
				defer j.close(c.Context())
			}
			if j != nil {
				var warn error
				if ledger, warn, err = loadCheckLedger(c.Context(), checkLedgerFile(sp), j.store); err != nil {
					return err
				}
				if warn != nil {
					fmt.Fprintf(e.stderr, "vigil: %v; those changes are recorded again\n", warn)
				}
			}
			// Change control (change_cmds.go): nil without people/roles/... sections.
			cc, err := newCheckControl(c.Context(), e, sp, pol, jf.store)
			if err != nil {
				return err
			}
			s = checkJournalSink(c.Context(), s, j, ledger, e.now)
			res := cc.results(c.Context(), s)
			prog := newProgress(e.stderr, e.stderrTTY && !asJSON, int64(r.Header().Entries))
			sum, err := integrity.Check(c.Context(), r, pol, integrity.Options{Workers: workers, Full: full, Limit: limit, Progress: progressFunc(prog)}, res)
			prog.done()
			if err != nil {
				return err
			}
			sum.Baseline = sp.db
			if err := s.finish(&sum); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			// A settlement of a change that is still open for review is
			// recorded once too, like the change.
			settled := func(kind string, ev *store.ChangeEvent, body any) error {
				if j == nil {
					return nil
				}
				return j.recordOnce(c.Context(), ledger, ev.Path, kind, e.now(), "", body)
			}
			if err := cc.settle(c.Context(), e, sp, asJSON, settled); err != nil {
				return err
			}
			if j != nil {
				// The run's own record, every run: the control operated,
				// with what it found and how much of it the log already
				// held.
				if err := j.record(c.Context(), evidence.KindUserAction, e.now(), "", checkEvidence{
					Action: "check", Summary: sum,
					Changes: ledger.count(evidence.KindChange), Reviews: ledger.count(evidence.KindReview),
				}); err != nil {
					return err
				}
				if err := j.close(c.Context()); err != nil {
					return err
				}
				if err := ledger.save(sum.Roots); err != nil {
					return err
				}
			}
			switch {
			case sum.Problems > 0:
				return &exitError{code: ExitIncomplete}
			case sum.Changes() > 0:
				return &exitError{code: ExitChanges}
			}
			return nil
		},
	}
	sf.register(c)
	sf.registerPubkey(c)
	jf.register(c)
	c.Flags().StringVar(&policyFile, "policy", "", "check with this policy instead of the one stored in the baseline")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON document (docs/json.md)")
	c.Flags().BoolVar(&full, "full", false, "re-hash every file, even with an unchanged fingerprint")
	c.Flags().IntVar(&workers, "workers", 0, "concurrent stat and hash workers (default: scanner's choice)")
	return c
}

// checkEvidence is the record every check run leaves, whatever it found.
type checkEvidence struct {
	Action  string         `json:"action"` // "check"
	Summary record.Summary `json:"summary"`
	// Changes counts the run's change records: appended, and left out
	// because the log already held them from an earlier run.
	Changes ledgerCount `json:"change_records"`
	// Reviews counts the settlement records of changes open for review.
	Reviews ledgerCount `json:"review_records"`
}

func newAcceptCmd(e *env) *cobra.Command {
	var sf stateFlags
	var jf journalFlags
	var note string
	var asJSON bool
	c := &cobra.Command{
		Use:   "accept [--db FILE] [--note TEXT] [PATH...]",
		Short: "Take the current state of paths into the baseline",
		Long: `Takes the current state of the given paths (every monitored tree if none) into
a new generation of the baseline, recording who accepted it, when and why.
Entries that cannot be read keep their previous state and are reported.`,
		RunE: func(c *cobra.Command, args []string) error {
			sp, err := sf.resolve()
			if err != nil {
				return err
			}
			paths, err := absPaths(args)
			if err != nil {
				return err
			}
			key, err := signing.Load(sp.key)
			if err != nil {
				return fmt.Errorf("load signing key: %w", err)
			}
			unlock, err := lockBaseline(sp)
			if err != nil {
				return err
			}
			defer unlock()
			r, err := openBaseline(sp, "")
			if err != nil {
				return err
			}
			pol, err := policyOf(r, "")
			r.Close()
			if err != nil {
				return err
			}
			s, err := newSink(e, asJSON)
			if err != nil {
				return err
			}
			j, err := jf.open(c.Context(), sp, key, pol)
			if err != nil {
				return err
			}
			defer j.close(c.Context())
			by := baselineActor()
			s = journalSink(c.Context(), s, j, evidence.KindAcceptance, "accept",
				map[string]any{"note": note, "accepted_by": by, "paths": paths}, e.now)
			jr := results{s}
			res, err := integrity.Accept(c.Context(), sp.db, key.Signer(), key.Verifier(), pol, paths, by, note, integrity.Options{}, jr)
			if err != nil {
				return err
			}
			if err := j.close(c.Context()); err != nil {
				return err
			}
			if asJSON {
				if err := s.finish(&record.Summary{Baseline: sp.db, Generation: res.Generation, Roots: pol.Roots(), Modified: res.Accepted, Problems: res.Problems}); err != nil {
					return err
				}
			} else {
				if err := s.finish(&record.Summary{Baseline: sp.db, Generation: res.Generation, Roots: pol.Roots(), Problems: res.Problems}); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "accepted %d change%s into %s generation %d by %s\n", res.Accepted, plural(res.Accepted), sp.db, res.Generation, currentActor())
			}
			if res.Problems > 0 {
				return &exitError{code: ExitIncomplete}
			}
			return nil
		},
	}
	sf.register(c)
	jf.register(c)
	c.Flags().StringVar(&note, "note", "", "why the change is accepted (recorded in the baseline)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the accepted changes as one JSON document")
	return c
}

func newShowCmd(e *env) *cobra.Command {
	var sf stateFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "show [--db FILE] PATH",
		Short: "Print what the baseline holds for a path",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sp, err := sf.resolve()
			if err != nil {
				return err
			}
			path, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			r, err := openBaseline(sp, sf.pubkey)
			if err != nil {
				return err
			}
			defer r.Close()
			ent, tag, err := r.Find(path)
			if errors.Is(err, baseline.ErrNotFound) {
				return fmt.Errorf("%s is not in baseline %s", displayPath(path), sp.db)
			}
			if err != nil {
				return err
			}
			h := r.Header()
			var acc *baseline.Acceptance
			if a, ok := h.Acceptance(tag); ok {
				acc = &a
			}
			if asJSON {
				out := struct {
					*fim.EntryJSON
					Accepted *baseline.Acceptance `json:"accepted,omitempty"`
				}{ent.JSON(true), acc}
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			printEntry(e, ent, acc)
			return nil
		},
	}
	sf.register(c)
	sf.registerPubkey(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print the entry as JSON")
	return c
}

func printEntry(e *env, ent *fim.Entry, acc *baseline.Acceptance) {
	w := e.stdout
	row := func(k, v string) { fmt.Fprintf(w, "%-12s %s\n", k+":", v) }
	row("path", displayPath(ent.Path))
	row("type", ent.Type.String())
	row("mode", ent.ModeString())
	row("owner", fmt.Sprintf("%d (%s) / %d (%s)", ent.UID, userName(ent.UID), ent.GID, groupName(ent.GID)))
	row("size", fmt.Sprintf("%d", ent.Size))
	row("mtime", fim.FormatTime(ent.Mtime))
	row("ctime", fim.FormatTime(ent.Ctime))
	row("inode", fmt.Sprintf("%d (dev %d, %d links)", ent.Inode, ent.Dev, ent.Nlink))
	if ent.Type == fim.TypeSymlink {
		row("link_target", displayPath(ent.LinkTarget))
	}
	if ent.Type.IsDevice() {
		// A device entry from a version-1 baseline has no number until
		// the next accept records it.
		row("rdev", orDefault(ent.RdevString(), "(not recorded; accept the path to record it)"))
	}
	if !ent.Content.IsZero() {
		row("content", ent.Content.String())
	}
	if ent.ACL != "" {
		row("acl", ent.ACL)
	}
	for _, x := range ent.Xattrs {
		row("xattr", x.Name+"="+xattrText(x))
	}
	if acc != nil {
		by := acc.Actor.User
		if acc.Actor.LoginUser != "" && acc.Actor.LoginUser != acc.Actor.User {
			by += " (login " + acc.Actor.LoginUser + ")"
		}
		s := fmt.Sprintf("%s by %s", acc.Time.UTC().Format("2006-01-02T15:04:05Z"), by)
		if acc.Note != "" {
			s += fmt.Sprintf(": %q", acc.Note)
		}
		row("recorded", s)
	}
}

func joinRoots(r []string) string {
	if len(r) == 0 {
		return "(nothing)"
	}
	s := r[0]
	for _, x := range r[1:] {
		s += ", " + x
	}
	return s
}
