package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilfim/vigil/internal/baseline"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/signing"
	"github.com/vigilfim/vigil/internal/store/postgres"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

// evidenceStore is what the evidence commands need of a store; both the
// SQLite and the PostgreSQL store provide it.
type evidenceStore interface {
	evidence.Store
	evidence.CheckpointerStore
	evidence.PruneStore
	Close() error
}

func openEvidenceStore(ctx context.Context, loc string) (evidenceStore, error) {
	if strings.HasPrefix(loc, "postgres://") || strings.HasPrefix(loc, "postgresql://") {
		return postgres.Open(ctx, loc)
	}
	if err := os.MkdirAll(filepath.Dir(loc), 0o700); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	return sqlite.Open(ctx, loc)
}

// journal appends a command's records to the evidence log and signs a
// checkpoint over them when the command ends, so every run leaves the log
// verifiable up to its last record.
type journal struct {
	store  evidenceStore
	log    *evidence.Log
	cpr    *evidence.Checkpointer
	host   string
	actor  string
	wrote  bool
	closed bool
}

// checkpointFile is the copy of the latest checkpoint kept outside the
// database, so a database restored from an old copy is caught.
func checkpointFile(sp statePaths) string {
	return filepath.Join(filepath.Dir(sp.db), "evidence.checkpoint")
}

func openJournal(ctx context.Context, sp statePaths, storeFlag string, key *signing.Key, witness []string, interval time.Duration) (*journal, error) {
	st, err := openEvidenceStore(ctx, storeDSN(sp, storeFlag))
	if err != nil {
		return nil, fmt.Errorf("open evidence store: %w", err)
	}
	lg, err := evidence.OpenLog(ctx, st, evidence.LogOptions{})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open evidence log: %w", err)
	}
	host, _ := os.Hostname()
	return &journal{
		store: st,
		log:   lg,
		cpr: evidence.NewCheckpointer(st, key.Signer(), key.Verifier(), evidence.CheckpointerOptions{
			File: checkpointFile(sp), WitnessDirs: witness, Interval: interval,
		}),
		host:  host,
		actor: currentActor().evidenceName(),
	}, nil
}

// evidenceName is how the actor is named in evidence records: the login
// user first, because that is the person.
func (a actor) evidenceName() string {
	s := fmt.Sprintf("uid=%d(%s)", a.UID, a.User)
	if a.AUID != unsetLoginUID {
		s += fmt.Sprintf(" auid=%d(%s)", a.AUID, a.LoginUser)
	}
	return s
}

// record appends one record. A failure to record evidence fails the
// command: an audit trail with silent gaps is worse than none.
func (j *journal) record(ctx context.Context, kind string, t time.Time, actor string, body any) error {
	return j.recordOnce(ctx, nil, "", kind, t, actor, body)
}

// recordOnce is record for a record about path, which a ledger, when there
// is one, leaves out if the log already holds an identical record for the
// path.
func (j *journal) recordOnce(ctx context.Context, l *checkLedger, path, kind string, t time.Time, actor string, body any) error {
	if actor == "" {
		actor = j.actor
	}
	r, err := evidence.NewRecord(kind, t, j.host, actor, body)
	if err != nil {
		return fmt.Errorf("record %s evidence: %w", kind, err)
	}
	appendFn := func(r evidence.Record) (uint64, error) {
		idx, err := j.log.Append(ctx, r)
		if err != nil {
			return 0, fmt.Errorf("record %s evidence: %w", kind, err)
		}
		j.wrote = true
		return idx, nil
	}
	if l == nil {
		_, err := appendFn(r)
		return err
	}
	return l.record(path, r, appendFn)
}

// close signs a checkpoint if anything was written, then releases the
// store. Its error must be reported: the records are durable, but without a
// checkpoint they are only as safe as the database.
func (j *journal) close(ctx context.Context) error {
	if j == nil || j.closed {
		return nil
	}
	j.closed = true
	err := j.log.Close()
	if j.wrote && err == nil {
		// Sign even when ctx is done (an interrupted watch): the records
		// already written deserve a checkpoint.
		_, err = j.cpr.Checkpoint(context.WithoutCancel(ctx))
		if err != nil {
			err = fmt.Errorf("sign evidence checkpoint: %w", err)
		}
	}
	return errors.Join(err, j.store.Close())
}

// evidenceVerifier loads what verifies the evidence log: the host key, or
// a public key file.
func evidenceVerifier(sp statePaths, pubkey string) (note.Verifier, error) {
	return verifierFor(sp, pubkey)
}

// baselineWitnesses returns the witness directories of the policy stored in
// the baseline (when there is one to read) and the extra ones given.
func baselineWitnesses(sp statePaths, extra []string) []string {
	v, err := verifierFor(sp, "")
	if err != nil {
		return witnesses(nil, extra)
	}
	r, err := baseline.Open(sp.db, v)
	if err != nil {
		return witnesses(nil, extra)
	}
	defer r.Close()
	pol, err := policyOf(r, "")
	if err != nil {
		return witnesses(nil, extra)
	}
	return witnesses(pol, extra)
}
