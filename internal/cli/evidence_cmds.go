package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/signing"
)

func newEvidenceCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "evidence",
		Short: "Verify, checkpoint, export and prune the tamper-evident evidence log",
		Long: `Every change, acceptance, review, change-control action and health event is
appended to an append-only log whose records form a Merkle tree, committed to
by signed checkpoints (docs/evidence.md). These commands check it, sign it,
export ranges for auditors, and prune old payloads under retention.`,
	}
	c.AddCommand(newEvidenceVerifyCmd(e), newEvidenceCheckpointCmd(e), newEvidenceExportCmd(e), newEvidencePruneCmd(e))
	return c
}

type evidenceFlags struct {
	stateFlags
	store   string
	witness []string
}

func (f *evidenceFlags) register(c *cobra.Command) {
	f.stateFlags.register(c)
	c.Flags().StringVar(&f.store, "store", "", "evidence store: a SQLite file (default vigil.sqlite beside the baseline) or a postgres:// URL")
	c.Flags().StringSliceVar(&f.witness, "witness", nil, "witness directory holding checkpoint copies (repeatable)")
}

func newEvidenceVerifyCmd(e *env) *cobra.Command {
	var f evidenceFlags
	var bundle, trusted string
	c := &cobra.Command{
		Use:   "verify [--bundle FILE [--trusted-key KEY]]",
		Short: "Recompute the log and check every checkpoint, or check an exported bundle offline",
		Long: `Without --bundle: recomputes the Merkle tree from every stored record, checks
every checkpoint's signature, the consistency between successive checkpoints,
and the copies of the latest checkpoint outside the database (and in witness
directories). Any altered, deleted, reordered or inserted record, or a
rollback to an earlier state, is named by its index.

With --bundle: checks an exported bundle on its own, offline. Give the log's
public key obtained independently with --trusted-key (a key string or a file
holding one); without it the bundle is only checked against the key it carries.

Exit status: 0 verified, 2 error, 4 tampered.`,
		RunE: func(c *cobra.Command, args []string) error {
			if bundle != "" {
				return verifyBundle(e, bundle, trusted)
			}
			sp, err := f.resolve()
			if err != nil {
				return err
			}
			v, err := evidenceVerifier(sp, f.pubkey)
			if err != nil {
				return err
			}
			st, err := openEvidenceStore(c.Context(), storeDSN(sp, f.store))
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := evidence.Verify(c.Context(), st, evidence.VerifyOptions{Verifier: v, CheckpointFile: checkpointFile(sp), WitnessDirs: baselineWitnesses(sp, f.witness)})
			if errors.Is(err, evidence.ErrTampered) {
				return &exitError{code: ExitTampered, err: err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "evidence log verified: %d records, %d checkpoints\n", rep.Size, rep.Checkpoints)
			return nil
		},
	}
	f.register(c)
	f.registerPubkey(c)
	c.Flags().StringVar(&bundle, "bundle", "", "verify this exported bundle offline instead of the store")
	c.Flags().StringVar(&trusted, "trusted-key", "", "the log's public key (string or file) for --bundle")
	return c
}

func verifyBundle(e *env, path, trusted string) error {
	if trusted != "" {
		if b, err := os.ReadFile(trusted); err == nil {
			trusted = strings.TrimSpace(string(b))
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open bundle: %w", err)
	}
	defer f.Close()
	n := 0
	rep, err := evidence.VerifyBundle(bufio.NewReader(f), evidence.BundleOptions{TrustedKey: trusted}, func(evidence.BundleRecord) error {
		n++
		return nil
	})
	if errors.Is(err, evidence.ErrTampered) {
		return &exitError{code: ExitTampered, err: err}
	}
	if err != nil {
		return err
	}
	trust := "the key it carries (give --trusted-key to check against a key you trust)"
	if trusted != "" {
		trust = "the trusted key"
	}
	fmt.Fprintf(e.stdout, "bundle verified: records %d..%d (%d records, %d pruned) under checkpoint of size %d signed by %s, checked against %s\n",
		rep.From, rep.To-1, n, rep.Pruned, rep.Checkpoint.Size, rep.Origin, trust)
	return nil
}

// openAndCheckpoint opens the store and signs a checkpoint over the log as
// it is now, copying it out of the database and to the witnesses. The
// caller closes the store.
func (f *evidenceFlags) openAndCheckpoint(ctx context.Context) (evidenceStore, *signing.Key, evidence.Checkpoint, error) {
	var cp evidence.Checkpoint
	sp, err := f.resolve()
	if err != nil {
		return nil, nil, cp, err
	}
	key, err := signing.Load(sp.key)
	if err != nil {
		return nil, nil, cp, fmt.Errorf("load signing key: %w", err)
	}
	st, err := openEvidenceStore(ctx, storeDSN(sp, f.store))
	if err != nil {
		return nil, nil, cp, err
	}
	cp, err = evidence.NewCheckpointer(st, key.Signer(), key.Verifier(), evidence.CheckpointerOptions{
		File: checkpointFile(sp), WitnessDirs: baselineWitnesses(sp, f.witness),
	}).Checkpoint(ctx)
	if err != nil {
		st.Close()
		return nil, nil, cp, fmt.Errorf("sign checkpoint: %w", err)
	}
	return st, key, cp, nil
}

func newEvidenceCheckpointCmd(e *env) *cobra.Command {
	var f evidenceFlags
	c := &cobra.Command{
		Use:   "checkpoint",
		Short: "Sign a checkpoint over the log now",
		RunE: func(c *cobra.Command, args []string) error {
			st, _, cp, err := f.openAndCheckpoint(c.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			fmt.Fprintf(e.stdout, "checkpoint: %d records, root %x\n", cp.Size, cp.Root)
			return nil
		},
	}
	f.register(c)
	return c
}

func newEvidenceExportCmd(e *env) *cobra.Command {
	var f evidenceFlags
	var from, to uint64
	var out string
	c := &cobra.Command{
		Use:   "export --out FILE [--from N] [--to M]",
		Short: "Write a self-contained, offline-verifiable bundle of records [from, to)",
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			// Sign first, so the bundle covers everything recorded so far.
			st, key, _, err := f.openAndCheckpoint(c.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			tmp, err := os.CreateTemp(dirOf(out), ".vigil-bundle-*")
			if err != nil {
				return fmt.Errorf("create bundle: %w", err)
			}
			defer os.Remove(tmp.Name())
			w := bufio.NewWriter(tmp)
			sum, err := evidence.Export(c.Context(), st, w, evidence.ExportOptions{From: from, To: to, PublicKey: key.VerifierKey()})
			if err == nil {
				err = w.Flush()
			}
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("export evidence: %w", err)
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return fmt.Errorf("export evidence: %w", err)
			}
			fmt.Fprintf(e.stdout, "exported records %d..%d to %s (checkpoint size %d); verify with: vigil evidence verify --bundle %s --trusted-key '%s'\n",
				sum.From, sum.To-1, out, sum.Checkpoint.Size, out, key.VerifierKey())
			return nil
		},
	}
	f.register(c)
	c.Flags().Uint64Var(&from, "from", 0, "first record index")
	c.Flags().Uint64Var(&to, "to", 0, "end index, exclusive (default: up to the latest checkpoint)")
	c.Flags().StringVar(&out, "out", "", "bundle file to write")
	return c
}

func newEvidencePruneCmd(e *env) *cobra.Command {
	var f evidenceFlags
	var before, reason string
	c := &cobra.Command{
		Use:   "prune --before TIME --reason TEXT",
		Short: "Drop the payloads of records older than TIME, keeping proofs valid",
		Long: `Retention: drops the payloads of records older than TIME (RFC 3339, or a
duration such as 8760h meaning that long ago). Leaf hashes stay, so every
checkpoint and proof remains valid for what remains, and the prune itself is
appended to the log as a record naming who pruned what and why.`,
		RunE: func(c *cobra.Command, args []string) error {
			if before == "" || reason == "" {
				return errors.New("--before and --reason are required: pruning evidence is deliberate")
			}
			t, err := parseWhen(before, e.now())
			if err != nil {
				return err
			}
			sp, err := f.resolve()
			if err != nil {
				return err
			}
			key, err := signing.Load(sp.key)
			if err != nil {
				return fmt.Errorf("load signing key: %w", err)
			}
			j, err := openJournal(c.Context(), sp, f.store, key, baselineWitnesses(sp, f.witness), 0)
			if err != nil {
				return err
			}
			res, err := j.log.Prune(c.Context(), j.store, evidence.PruneRequest{Before: t, Now: e.now(), Host: j.host, Actor: j.actor, Reason: reason})
			if err != nil {
				j.close(c.Context())
				return fmt.Errorf("prune evidence: %w", err)
			}
			j.wrote = true
			if err := j.close(c.Context()); err != nil {
				return err
			}
			b, _ := json.Marshal(res)
			fmt.Fprintf(e.stdout, "pruned: %s\n", b)
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&before, "before", "", "prune records older than this (RFC 3339 time, or a duration ago such as 8760h)")
	c.Flags().StringVar(&reason, "reason", "", "why (recorded in the log)")
	return c
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration ago (720h)", s)
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return p[:i]
	}
	return "."
}
