package baseline

import (
	"errors"
	"fmt"
)

// ErrTampered matches (errors.Is) every error that says a baseline file
// failed verification or decoding: the file was changed, truncated,
// extended, damaged, signed by another key, or is of an unknown format.
// Use errors.As with *TamperedError to learn what exactly.
var ErrTampered = errors.New("baseline was tampered with or is damaged")

// ErrNotFound is returned by Reader.Find when the baseline has no entry
// for the path.
var ErrNotFound = errors.New("path not in baseline")

// Problem says what exactly is wrong with a refused baseline.
type Problem uint8

// The problems a baseline can have.
const (
	// Truncated: the file ends before its structure does.
	Truncated Problem = iota + 1
	// TrailingData: bytes follow the signature.
	TrailingData
	// BadMagic: the file is not a Vigil baseline.
	BadMagic
	// UnsupportedVersion: the format version is unknown to this reader.
	UnsupportedVersion
	// MalformedTrailer: the signature trailer cannot be parsed.
	MalformedTrailer
	// UnknownSigner: the baseline is signed, but not by the expected key
	// (made on another host, or re-signed by someone else).
	UnknownSigner
	// SignatureMismatch: the signature does not match the signed text.
	SignatureMismatch
	// ContentMismatch: the signature is good but the bytes it covers
	// have changed since signing.
	ContentMismatch
	// Corrupt: the signed bytes do not decode (a block or record is
	// malformed); with a good signature this means a writer bug or a
	// compromised key.
	Corrupt
	// ChangedWhileReading: the file's bytes differed between the
	// verification pass and the decoding pass.
	ChangedWhileReading
)

var problemNames = [...]string{
	Truncated:           "truncated",
	TrailingData:        "trailing data",
	BadMagic:            "bad magic",
	UnsupportedVersion:  "unsupported version",
	MalformedTrailer:    "malformed signature trailer",
	UnknownSigner:       "signed by a different key",
	SignatureMismatch:   "signature mismatch",
	ContentMismatch:     "content does not match signature",
	Corrupt:             "corrupt",
	ChangedWhileReading: "changed while being read",
}

// String returns a short name for the problem.
func (p Problem) String() string {
	if int(p) < len(problemNames) && problemNames[p] != "" {
		return problemNames[p]
	}
	return fmt.Sprintf("problem(%d)", uint8(p))
}

// TamperedError is the error for a baseline that failed verification or
// decoding. It matches ErrTampered.
type TamperedError struct {
	Path    string  // the baseline file
	Problem Problem // what kind of damage
	Detail  string  // what exactly, with offsets where known
}

// Error returns "baseline PATH was tampered with or is damaged: DETAIL".
func (e *TamperedError) Error() string {
	return fmt.Sprintf("baseline %s was tampered with or is damaged: %s", e.Path, e.Detail)
}

// Is makes errors.Is(err, ErrTampered) true.
func (e *TamperedError) Is(target error) bool { return target == ErrTampered }

// tampered builds a TamperedError whose detail starts with the problem name.
func tampered(path string, p Problem, format string, args ...any) *TamperedError {
	d := p.String()
	if format != "" {
		d += ": " + fmt.Sprintf(format, args...)
	}
	return &TamperedError{Path: path, Problem: p, Detail: d}
}
