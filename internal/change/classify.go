package change

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigilfim/vigil/internal/change/manifest"
	"github.com/vigilfim/vigil/internal/fim"
)

// PackageEvidence is what the package database says about the changed
// path, computed by the caller (pkgdb.Check) from the file's bytes. The
// classifier only compares values.
type PackageEvidence struct {
	Manager string `json:"manager"` // "dpkg", "rpm"
	Package string `json:"package"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	Path    string `json:"path"`
	// Conffile marks a configuration file, whose recorded checksum is that
	// of the version the package shipped.
	Conffile bool `json:"conffile,omitempty"`
	// Matches reports whether the bytes read match the package's recorded
	// checksum.
	Matches bool `json:"matches"`
	// Content is the digest ("alg:hex", the change record's algorithm) of
	// the same bytes, tying the package match to the change's new content:
	// a file rewritten between the scan and the package check can't borrow
	// the package's authority.
	Content string `json:"content"`
}

// RejectedManifest is a manifest that failed verification (Open returned
// *manifest.UnknownSignerError), kept so a change it would have covered is
// reported as unknown_signer rather than just uncovered. Manifest is the
// unverified text's decoding and is never trusted.
type RejectedManifest struct {
	Manifest *manifest.Manifest `json:"manifest"`
	Reason   Reason             `json:"reason"`
	Detail   string             `json:"detail,omitempty"`
}

// Input is everything Classify looks at.
type Input struct {
	Change fim.Change
	Host   string
	// At is when the change was made (the who-data event time), or when it
	// was detected if that is all that is known.
	At time.Time
	// Now is the evaluation time; it only matters for emergency requests
	// whose approval deadline has not passed yet.
	Now time.Time
	// Actor is the who-data; nil when there is none (a scan).
	Actor     *Actor
	Requests  []Request
	Manifests []*manifest.Verified
	Rejected  []RejectedManifest
	// Package is the package database's answer for the path; nil when the
	// path belongs to no package or nobody asked.
	Package *PackageEvidence
}

// contentAttrs are the attributes that move when content is rewritten or
// a file replaced. Manifests and package checksums vouch for content only:
// a chmod or chown of a deployed file is not authorized by its manifest.
const contentAttrs = fim.AttrSet(fim.AttrSize) | fim.AttrSet(fim.AttrMtime) | fim.AttrSet(fim.AttrCtime) |
	fim.AttrSet(fim.AttrInode) | fim.AttrSet(fim.AttrNlink) | fim.AttrSet(fim.AttrContent) | fim.AttrSet(fim.AttrDev)

// Classify decides whether the change was authorized. It is a pure
// function of the classifier's configuration and the input.
//
// A change is authorized by, in this order of preference, a verified
// manifest listing its path with its new content, the package manager
// installing its package's recorded content, or a change request covering
// it; and then only if no SoD rule (conflicting roles, organization rules)
// is broken. Otherwise the verdict lists why not.
func (c *Classifier) Classify(in Input) Verdict {
	person, via := c.resolve(in.Actor)
	var v Verdict
	var notes []string
	if person != nil {
		v.Person = person.ID
	}
	notes = append(notes, describeActor(in.Actor, person, via))

	m := c.byManifest(in)
	pkgAuth, pkgNote := c.byPackage(in)
	rq := c.byRequest(in, person)
	notes = append(notes, m.notes...)
	if pkgNote != "" {
		notes = append(notes, pkgNote)
	}
	if rq.req != nil {
		v.Request = rq.req.ID
	}

	var auth *Authority
	var reasons []Reason
	switch {
	case m.auth != nil:
		auth = m.auth
	case pkgAuth != nil:
		auth = pkgAuth
	case rq.auth != nil:
		auth = rq.auth
		v.RecheckAt = rq.recheck
	}
	// What a request says only matters when no manifest or package
	// authorized the change.
	if auth == nil || auth == rq.auth {
		notes = append(notes, rq.notes...)
	}
	if auth == nil {
		reasons = append(reasons, m.reasons...)
		if rq.req != nil {
			reasons = append(reasons, rq.reasons...)
		} else if len(m.reasons) == 0 {
			reasons = append(reasons, NoChangeRequest)
			notes = append(notes, fmt.Sprintf("No change request, manifest or package covers %s on %s.", in.Change.Path, in.Host))
		}
	}

	sodReasons, sodNotes := c.sod(in, person, rq.req, auth)
	reasons = append(reasons, sodReasons...)
	notes = append(notes, sodNotes...)

	v.Reasons = normalize(reasons)
	if len(v.Reasons) == 0 {
		v.Authorized, v.By = true, auth
		v.Explanation = fmt.Sprintf("Authorized by %s %s. %s", strings.ReplaceAll(string(auth.Kind), "_", " "), auth.ID, strings.Join(notes, " "))
	} else {
		v.RecheckAt = nil
		v.Explanation = "Unauthorized. " + strings.Join(notes, " ")
	}
	return v
}

func describeActor(a *Actor, p *Person, via string) string {
	switch {
	case a == nil:
		return "No who-data for the change."
	case p != nil:
		return fmt.Sprintf("Made by %s (%s%s).", p.ID, via, exeNote(a))
	}
	return fmt.Sprintf("Made by an unknown person (%s%s).", via, exeNote(a))
}

func exeNote(a *Actor) string {
	if a.Exe == "" && a.Comm == "" {
		return ""
	}
	return ", " + cmp.Or(a.Exe, a.Comm)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// contentOnly reports whether the change touches content alone, so a
// content checksum can vouch for all of it.
func contentOnly(ch *fim.Change) bool {
	return ch.Kind != fim.Modified || ch.Changed&^contentAttrs == 0
}

type manifestResult struct {
	auth    *Authority
	reasons []Reason
	notes   []string
}

// byManifest looks for a verified manifest that lists the path for the
// host with the change's new content. Manifests are tried newest first
// (then by pipeline and run) so the verdict names the same one every time.
func (c *Classifier) byManifest(in Input) manifestResult {
	var res manifestResult
	ch := &in.Change
	ms := slices.Clone(in.Manifests)
	slices.SortStableFunc(ms, func(a, b *manifest.Verified) int {
		return cmp.Or(b.Manifest.Created.Compare(a.Manifest.Created),
			cmp.Compare(a.Manifest.Pipeline, b.Manifest.Pipeline), cmp.Compare(a.Manifest.Run, b.Manifest.Run))
	})
	var mismatch, sod []string
	for _, vm := range ms {
		f, ok := vm.Covers(in.Host, ch.Path)
		if !ok {
			continue
		}
		mf := vm.Manifest
		id := mf.Pipeline + "/" + mf.Run
		switch {
		case !mf.ValidAt(in.At):
			mismatch = append(mismatch, fmt.Sprintf("manifest %s is not valid at %s", id, stamp(in.At)))
		case ch.New == nil:
			mismatch = append(mismatch, fmt.Sprintf("manifest %s lists %s but it was removed", id, ch.Path))
		case ch.New.Content.Alg != fim.SHA256:
			mismatch = append(mismatch, fmt.Sprintf("manifest %s lists %s with a sha256, but the change has no sha256 content digest to compare", id, ch.Path))
		case !f.Digest().Equal(ch.New.Content):
			mismatch = append(mismatch, fmt.Sprintf("manifest %s expects %s, the file has %s", id, f.Digest(), ch.New.Content))
		case !contentOnly(ch):
			mismatch = append(mismatch, fmt.Sprintf("manifest %s vouches for content only, but %s changed", id, (ch.Changed&^contentAttrs).String()))
		case !hasIndependentReviewer(mf):
			sod = append(sod, fmt.Sprintf("manifest %s (commit %s by %s) has no reviewer other than its author", id, mf.Commit, mf.Author))
		default:
			res.auth = &Authority{Kind: ByManifest, ID: id,
				Detail: fmt.Sprintf("commit %s by %s, reviewed by %s, signed by pipeline %s", mf.Commit, mf.Author, strings.Join(mf.Reviewers, ", "), vm.Pipeline.ID)}
			res.notes = append(res.notes, fmt.Sprintf("Content matches manifest %s (%s).", id, res.auth.Detail))
			return res
		}
	}
	if len(mismatch) > 0 {
		res.reasons = append(res.reasons, ManifestMismatch)
		res.notes = append(res.notes, upper(strings.Join(mismatch, "; "))+".")
	}
	if len(sod) > 0 {
		res.reasons = append(res.reasons, SoDConflict)
		res.notes = append(res.notes, upper(strings.Join(sod, "; "))+".")
	}
	if len(res.reasons) == 0 {
		for _, r := range in.Rejected {
			if r.Manifest == nil || !r.Manifest.Targets(in.Host) {
				continue
			}
			if _, ok := r.Manifest.Lookup(ch.Path); ok {
				res.reasons = append(res.reasons, cmp.Or(r.Reason, UnknownSigner))
				res.notes = append(res.notes, fmt.Sprintf("Manifest %s/%s lists %s but was rejected: %s.", r.Manifest.Pipeline, r.Manifest.Run, ch.Path, cmp.Or(r.Detail, string(cmp.Or(r.Reason, UnknownSigner)))))
			}
		}
	}
	return res
}

// hasIndependentReviewer is the built-in rule that a manifest's author is
// not its only reviewer.
func hasIndependentReviewer(m *manifest.Manifest) bool {
	return slices.ContainsFunc(m.Reviewers, func(r string) bool { return r != m.Author })
}

func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// byPackage authorizes a change whose new content is what the package
// database records, made by the package manager (or seen by a scan with
// no who-data at all).
func (c *Classifier) byPackage(in Input) (*Authority, string) {
	pe, ch := in.Package, &in.Change
	if pe == nil {
		return nil, ""
	}
	pkg := fmt.Sprintf("%s %s (%s)", pe.Package, pe.Version, pe.Manager)
	switch {
	case pe.Path != ch.Path:
		return nil, fmt.Sprintf("Package evidence is for %s, not this path; ignored.", pe.Path)
	case ch.New == nil:
		return nil, fmt.Sprintf("%s is owned by package %s but was removed.", ch.Path, pkg)
	case !pe.Matches:
		return nil, fmt.Sprintf("%s is owned by package %s but its content does not match the package's checksum.", ch.Path, pkg)
	case pe.Content == "" || pe.Content != ch.New.Content.String():
		return nil, fmt.Sprintf("%s matched package %s when checked, but not with the content this change recorded.", ch.Path, pkg)
	case !contentOnly(ch):
		return nil, fmt.Sprintf("Package %s vouches for the content of %s only, but %s changed.", pkg, ch.Path, (ch.Changed &^ contentAttrs).String())
	case in.Actor != nil && !c.isPackageManager(in.Actor):
		return nil, fmt.Sprintf("Content matches package %s, but the change was not made by a package manager.", pkg)
	}
	a := &Authority{Kind: ByPackage, ID: pe.Package, Detail: fmt.Sprintf("version %s (%s)", pe.Version, pe.Manager)}
	return a, fmt.Sprintf("Content matches package %s as installed.", pkg)
}

type requestResult struct {
	req     *Request
	auth    *Authority
	reasons []Reason
	notes   []string
	recheck *time.Time
}

// byRequest judges the change against every request whose scope covers
// it and keeps the best: fewest reasons, then a final verdict over a
// provisional (emergency) one, then the lowest ID.
func (c *Classifier) byRequest(in Input, person *Person) requestResult {
	var cands []requestResult
	for i := range in.Requests {
		r := &in.Requests[i]
		if r.Scope.Covers(in.Host, in.Change.Path) {
			cands = append(cands, c.judge(in, person, r))
		}
	}
	if len(cands) == 0 {
		return requestResult{}
	}
	slices.SortFunc(cands, func(a, b requestResult) int {
		return cmp.Or(cmp.Compare(len(a.reasons), len(b.reasons)),
			cmp.Compare(boolInt(a.recheck != nil), boolInt(b.recheck != nil)),
			cmp.Compare(a.req.ID, b.req.ID))
	})
	best := cands[0]
	if len(cands) > 1 {
		var others []string
		for _, o := range cands[1:] {
			s := o.req.ID + " (authorizes)"
			if len(o.reasons) > 0 {
				s = fmt.Sprintf("%s (%s)", o.req.ID, joinReasons(normalize(o.reasons)))
			}
			others = append(others, s)
		}
		best.notes = append([]string{fmt.Sprintf("%d change requests cover the path; judged against %s (fewest problems, then lowest ID); also considered %s.",
			len(cands), best.req.ID, strings.Join(others, ", "))}, best.notes...)
	}
	return best
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func joinReasons(rs []Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// judge checks one covering request: window, implementer, approvals.
func (c *Classifier) judge(in Input, person *Person, r *Request) requestResult {
	res := requestResult{req: r}
	fail := func(reason Reason, format string, a ...any) {
		res.reasons = append(res.reasons, reason)
		res.notes = append(res.notes, fmt.Sprintf(format, a...))
	}
	at := in.At
	if !r.Window.Contains(at) {
		fail(OutsideWindow, "The change to %s was made at %s, outside the window of %s (%s to %s).", in.Change.Path, stamp(at), r.ID, stamp(r.Window.Start), stamp(r.Window.End))
	} else if r.Closed != nil && !at.Before(*r.Closed) {
		fail(OutsideWindow, "%s was closed at %s, before the change at %s.", r.ID, stamp(*r.Closed), stamp(at))
	}

	switch {
	case person == nil:
		fail(UnknownActor, "Who made the change is unknown, so it can't be checked against the implementers of %s.", r.ID)
	case !slices.Contains(r.Implementers, person.ID):
		fail(NotAnImplementer, "%s is not an implementer of %s (%s).", person.ID, r.ID, strings.Join(r.Implementers, ", "))
	case !c.mayImplement(person, in.Host, in.Change.Path):
		fail(NotAnImplementer, "%s implements %s, but no role of theirs allows changes to %s on %s.", person.ID, r.ID, in.Change.Path, in.Host)
	}

	// Sort out the approvals: an approval by the requester, an implementer
	// or the person who made the change never counts (SoD), nor does one by
	// someone the directory doesn't let approve.
	var valid []Decision
	var self, powerless []string
	for _, a := range r.Approvals {
		p, known := c.people[a.By]
		switch {
		case a.By == r.Requester || slices.Contains(r.Implementers, a.By) || (person != nil && a.By == person.ID):
			self = append(self, a.By)
		case !known || !c.mayApprove(p):
			powerless = append(powerless, a.By)
		default:
			valid = append(valid, a)
		}
	}
	slices.SortStableFunc(valid, func(a, b Decision) int { return a.At.Compare(b.At) })
	firstBy := func(deadline time.Time) (Decision, bool) {
		for _, a := range valid {
			if !a.At.After(deadline) {
				return a, true
			}
		}
		return Decision{}, false
	}
	notApproved := func() {
		switch {
		case len(valid) > 0:
			fail(NotApproved, "%s was approved by %s only after the change, at %s.", r.ID, valid[0].By, stamp(valid[0].At))
		case len(self) > 0:
			fail(SelfApproved, "%s was approved only by %s, who requested, implements or made the change.", r.ID, strings.Join(self, ", "))
		case len(powerless) > 0:
			fail(NotApproved, "%s was approved only by %s, who hold no approving role.", r.ID, strings.Join(powerless, ", "))
		default:
			fail(NotApproved, "%s has no approval (state %s).", r.ID, stateName(r.State))
		}
	}
	var detail string
	if rej := r.Rejection; rej != nil && !rej.At.After(at) {
		fail(NotApproved, "%s was rejected by %s at %s, before the change.", r.ID, rej.By, stamp(rej.At))
	} else if a, ok := firstBy(at); ok {
		detail = fmt.Sprintf("approved by %s at %s", a.By, stamp(a.At))
	} else if r.Emergency {
		due := at.Add(c.emergency)
		if a, ok := firstBy(due); ok {
			detail = fmt.Sprintf("emergency change, approved afterwards by %s at %s, within %s", a.By, stamp(a.At), c.emergency)
		} else if rej := r.Rejection; rej != nil {
			fail(NotApproved, "%s is an emergency request and was rejected by %s at %s, after the change.", r.ID, rej.By, stamp(rej.At))
		} else if in.Now.Before(due) {
			detail = fmt.Sprintf("emergency change, approval due by %s", stamp(due))
			res.recheck = &due
		} else {
			fail(EmergencyUnreviewed, "%s is an emergency request and was not approved within %s of the change (by %s).", r.ID, c.emergency, stamp(due))
			if len(valid) == 0 && len(self) > 0 {
				fail(SelfApproved, "%s was approved only by %s, who requested, implements or made the change.", r.ID, strings.Join(self, ", "))
			}
		}
	} else {
		notApproved()
	}

	if len(res.reasons) == 0 {
		res.auth = &Authority{Kind: ByChangeRequest, ID: r.ID, Detail: detail}
		res.notes = append(res.notes, fmt.Sprintf("%s covers %s on %s, the change was made in its window by implementer %s, %s.", r.ID, in.Change.Path, in.Host, person.ID, detail))
	} else {
		res.recheck = nil
	}
	return res
}

// sod applies the rules that hold whatever the authority: conflicting
// roles held by the person who made the change, and organization rules.
func (c *Classifier) sod(in Input, person *Person, req *Request, auth *Authority) ([]Reason, []string) {
	var reasons []Reason
	var notes []string
	if person != nil {
		for _, set := range c.conflicts {
			var held []string
			for _, r := range set {
				if person.HasRole(r) {
					held = append(held, r)
				}
			}
			if len(held) > 1 {
				reasons = append(reasons, SoDConflict)
				notes = append(notes, fmt.Sprintf("%s holds conflicting roles %s.", person.ID, strings.Join(held, " and ")))
			}
		}
	}
	if len(c.rules) == 0 {
		return reasons, notes
	}
	vars := ruleVars(in, person, req, auth)
	for _, r := range c.rules {
		if bad, note := r.eval(vars); bad {
			reasons = append(reasons, r.reason)
			notes = append(notes, upper(note)+".")
		}
	}
	return reasons, notes
}

func ruleVars(in Input, person *Person, req *Request, auth *Authority) map[string]any {
	ch := &in.Change
	rc := RuleChange{Path: ch.Path, Kind: ch.Kind.String(), Changed: ch.Changed.Names(), Host: in.Host, Time: in.At,
		OldMode: -1, NewMode: -1, NewUID: -1, NewGID: -1}
	if ch.Kind != fim.Modified {
		rc.Changed = []string{}
	}
	if ch.Old != nil {
		rc.OldContent, rc.OldMode = ch.Old.Content.String(), int64(ch.Old.Mode)
	}
	if ch.New != nil {
		rc.NewContent, rc.NewMode = ch.New.Content.String(), int64(ch.New.Mode)
		rc.NewUID, rc.NewGID = int64(ch.New.UID), int64(ch.New.GID)
	}
	ra := RuleActor{UID: -1, AUID: -1, Roles: []string{}}
	if a := in.Actor; a != nil {
		ra.Known, ra.UID, ra.User, ra.Login, ra.Exe, ra.Comm = true, int64(a.UID), a.User, a.LoginUser, a.Exe, a.Comm
		ra.Attribution = a.Attribution
		if auid, ok := a.auid(); ok {
			ra.AUID = int64(auid)
		}
	}
	if person != nil {
		ra.Person, ra.Roles = person.ID, person.Roles
	}
	rr := RuleRequest{Implementers: []string{}, Approvers: []string{}}
	if req != nil {
		rr = RuleRequest{Present: true, ID: req.ID, Title: req.Title, Requester: req.Requester, Implementers: req.Implementers,
			Emergency: req.Emergency, State: string(req.State), WindowStart: req.Window.Start, WindowEnd: req.Window.End, Approvers: []string{}}
		for _, a := range req.Approvals {
			rr.Approvers = append(rr.Approvers, a.By)
		}
	}
	var ra2 RuleAuthority
	if auth != nil {
		ra2 = RuleAuthority{Kind: string(auth.Kind), ID: auth.ID}
	}
	return map[string]any{"change": rc, "actor": ra, "request": rr, "authority": ra2}
}
