// Package change decides whether a change to a monitored file was
// authorized, and by what: an approved change request, a signed deployment
// manifest from CI/CD, or the system's package manager installing the
// content its package database records. It also holds the pure parts of
// change control around that decision: change requests and their state
// transitions, the directory of people and roles, segregation-of-duties
// (SoD) rules including organization rules written in CEL, and the review
// queue's state machine.
//
// Everything here is pure: Classify takes values (the change, who made it,
// the requests, the verified manifests, the package lookup result, the
// evaluation time) and returns a Verdict. Reading the package database
// (subpackage pkgdb), verifying manifests (subpackage manifest), the clock
// and persistence are done by the caller. The model is described in
// docs/change-control.md.
package change

import (
	"slices"
	"time"
)

// Reason is why a change is unauthorized. The string values are part of
// the JSON change record and the store schema.
type Reason string

// The reasons, in the order a verdict lists them.
const (
	// NoChangeRequest: no change request, manifest or package covers the
	// path on the host.
	NoChangeRequest Reason = "no_change_request"
	// OutsideWindow: a covering request exists but the change was made
	// outside its window.
	OutsideWindow Reason = "outside_window"
	// NotAnImplementer: the person who made the change is not an
	// implementer of the request, or holds no role allowing changes there.
	NotAnImplementer Reason = "not_an_implementer"
	// NotApproved: the request had no valid approval when the change was
	// made (open, rejected, or approved only afterwards).
	NotApproved Reason = "not_approved"
	// SelfApproved: the only approvals are by the requester, an
	// implementer or the person who made the change.
	SelfApproved Reason = "self_approved"
	// ManifestMismatch: a verified manifest for the host lists the path
	// with other content.
	ManifestMismatch Reason = "manifest_mismatch"
	// UnknownSigner: the only manifest listing the path was signed by no
	// registered pipeline key (or by none at all) and was rejected.
	UnknownSigner Reason = "unknown_signer"
	// SoDConflict: a segregation-of-duties rule is broken: conflicting
	// roles, a manifest reviewed only by its author, or an organization
	// (CEL) rule.
	SoDConflict Reason = "sod_conflict"
	// EmergencyUnreviewed: an emergency change was not approved within the
	// allowed time after it was made.
	EmergencyUnreviewed Reason = "emergency_unreviewed"
	// UnknownActor: no who-data, or the account is not mapped to a person,
	// so nothing can be checked against the request's implementers.
	UnknownActor Reason = "unknown_actor"
)

// reasons lists every reason in verdict order.
var reasons = [...]Reason{
	NoChangeRequest, OutsideWindow, NotAnImplementer, NotApproved, SelfApproved,
	ManifestMismatch, UnknownSigner, SoDConflict, EmergencyUnreviewed, UnknownActor,
}

// AllReasons returns every reason code in the order verdicts list them.
func AllReasons() []Reason { return slices.Clone(reasons[:]) }

// Valid reports whether r is a known reason code.
func (r Reason) Valid() bool { return slices.Contains(reasons[:], r) }

func (r Reason) rank() int { return slices.Index(reasons[:], r) }

// normalize deduplicates reasons and puts them in verdict order, so equal
// verdicts compare and store equal.
func normalize(rs []Reason) []Reason {
	if len(rs) == 0 {
		return nil
	}
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b Reason) int { return a.rank() - b.rank() })
	return slices.Compact(out)
}

// AuthorityKind is what authorized a change.
type AuthorityKind string

// Authority kinds.
const (
	ByChangeRequest AuthorityKind = "change_request"
	ByManifest      AuthorityKind = "manifest"
	ByPackage       AuthorityKind = "package"
)

// Authority names what authorized a change.
type Authority struct {
	Kind AuthorityKind `json:"kind"`
	// ID is the change request ID, the manifest's "pipeline/run", or the
	// package name.
	ID string `json:"id"`
	// Detail adds the package version, the manifest's commit, or how an
	// emergency request stands.
	Detail string `json:"detail,omitempty"`
}

// Verdict is the outcome of classifying one change.
type Verdict struct {
	Authorized bool       `json:"authorized"`
	By         *Authority `json:"by,omitempty"`
	// Reasons are set when unauthorized: deduplicated, in the order of
	// AllReasons.
	Reasons []Reason `json:"reasons,omitempty"`
	// Explanation says in a sentence or few what was checked and why the
	// verdict is what it is, for people reading reports.
	Explanation string `json:"explanation"`
	// Person is the person the change was attributed to, if any.
	Person string `json:"person,omitempty"`
	// Request is the change request the change was judged against, set
	// whether or not it authorized the change, so reports can list every
	// change made under a request.
	Request string `json:"request,omitempty"`
	// RecheckAt is set when the verdict depends on the evaluation time: an
	// emergency change authorized until its approval deadline. Classify it
	// again at or after this time.
	RecheckAt *time.Time `json:"recheck_at,omitempty"`
}
