package evidence

import (
	"errors"
	"fmt"
)

// ErrTampered is wrapped by every *VerifyError, so callers can tell "the
// log failed verification" (errors.Is(err, ErrTampered)) from "verification
// could not run" (an I/O error).
var ErrTampered = errors.New("evidence failed verification")

// Reason says what verification found wrong.
type Reason string

// Reasons a VerifyError gives.
const (
	// ReasonAltered: a record's content does not match its stored leaf
	// hash, or the store's kind/time columns disagree with the record.
	ReasonAltered Reason = "record altered"
	// ReasonMalformed: a leaf does not decode.
	ReasonMalformed Reason = "record malformed"
	// ReasonMissing: a record was deleted.
	ReasonMissing Reason = "record missing"
	// ReasonReordered: a record is stored at another position.
	ReasonReordered Reason = "records reordered"
	// ReasonInserted: a record was added that the log never appended.
	ReasonInserted Reason = "record inserted"
	// ReasonPayloadRemoved: a payload was dropped without a prune record
	// covering it.
	ReasonPayloadRemoved Reason = "payload removed"
	// ReasonRewritten: the records up to a signed checkpoint hash to
	// another root: content and leaf hash were rewritten together.
	ReasonRewritten Reason = "does not match signed checkpoint"
	// ReasonFork: two signed checkpoints give one size different roots:
	// the log was forked, or a copy comes from another log with this key.
	ReasonFork Reason = "fork"
	// ReasonTruncated: records a checkpoint or the log head accounts for
	// are gone from the end of the log.
	ReasonTruncated Reason = "log truncated"
	// ReasonRollback: a checkpoint kept outside the database attests more
	// records than the database holds.
	ReasonRollback Reason = "rollback"
	// ReasonBadCheckpoint: a checkpoint's signature, origin or body is bad.
	ReasonBadCheckpoint Reason = "bad checkpoint"
	// ReasonCheckpointOrder: stored checkpoints shrink.
	ReasonCheckpointOrder Reason = "checkpoints out of order"
	// ReasonInconsistent: the stored tree gives no valid consistency proof
	// between two successive checkpoints (interior nodes altered).
	ReasonInconsistent Reason = "checkpoints inconsistent"
	// ReasonExternalMissing: the checkpoint file or a witness copy is
	// missing although the database has checkpoints.
	ReasonExternalMissing Reason = "external checkpoint missing"
	// ReasonBadProof: an inclusion proof in a bundle does not verify.
	ReasonBadProof Reason = "bad inclusion proof"
	// ReasonBadBundle: a bundle is malformed.
	ReasonBadBundle Reason = "bad bundle"
)

// VerifyError reports the first problem verification found.
type VerifyError struct {
	// Index is the first bad record's index, or -1 when the problem is not
	// about one record (a bad checkpoint signature, say).
	Index int64
	// Checkpoint is the Seq of the stored checkpoint concerned, or 0.
	Checkpoint uint64
	// Reason classifies the problem; Detail says exactly what was seen.
	Reason Reason
	Detail string
}

// Error reads "index 5: record altered: ..." or "checkpoint #3: ...".
func (e *VerifyError) Error() string {
	var where string
	switch {
	case e.Index >= 0:
		where = fmt.Sprintf("index %d: ", e.Index)
	case e.Checkpoint > 0:
		where = fmt.Sprintf("checkpoint #%d: ", e.Checkpoint)
	}
	return fmt.Sprintf("%s%s: %s", where, e.Reason, e.Detail)
}

// Unwrap returns ErrTampered.
func (e *VerifyError) Unwrap() error { return ErrTampered }

func recordProblem(index uint64, reason Reason, format string, args ...any) *VerifyError {
	return &VerifyError{Index: int64(index), Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

func checkpointProblem(seq uint64, reason Reason, format string, args ...any) *VerifyError {
	return &VerifyError{Index: -1, Checkpoint: seq, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}
