// Package policy defines what Vigil monitors: rules that name roots, how
// deep to descend, what to exclude, which attributes to compare, which hash
// to use, and the severity, control tags and owners attached to findings.
//
// Policies are written in YAML (docs/policy.md), decoded strictly (an
// unknown key is an error, and every error is reported with file:line:col),
// and compiled into a Policy whose lookups are pure functions of a path.
package policy

import (
	"strings"

	"github.com/vigilfim/vigil/internal/fim"
)

// Severity ranks how serious a change under a rule is.
type Severity uint8

// Severities, lowest first.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// String returns the severity's name.
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "unknown"
}

// Rule says how one tree is monitored.
type Rule struct {
	// Name identifies the rule in reports; defaults to the path.
	Name string
	// Path is the absolute, clean root of the rule.
	Path string
	// MaxDepth limits descent below Path: 0 is Path alone, -1 unlimited.
	MaxDepth int
	// Exclude holds glob patterns (see Match) of paths not monitored; an
	// excluded directory is not descended into.
	Exclude []string
	// Check is what is compared for entries under the rule.
	Check fim.Check
	// Hash is the content hash algorithm.
	Hash fim.HashAlg
	// CrossFilesystems allows descending into other mounted file systems.
	// Off by default: a scan of / must not wander into /proc or NFS.
	CrossFilesystems bool
	Severity         Severity
	// Tags are control identifiers such as "PCI-11.5.2".
	Tags []string
	// Owners are the people or teams responsible for the files.
	Owners []string
}

// Policy is a compiled policy.
type Policy struct {
	// Name is a free-text name for reports.
	Name string
	// Rules are sorted by path (fim.ComparePaths); paths are unique.
	Rules []*Rule
}

// Lookup returns the rule governing path: the rule with the deepest root
// containing it. It returns nil when no rule covers the path, or the path
// is excluded by the governing rule or lies deeper than its MaxDepth.
func (p *Policy) Lookup(path string) *Rule {
	var best *Rule
	for _, r := range p.Rules {
		if fim.IsWithin(path, r.Path) && (best == nil || len(r.Path) > len(best.Path)) {
			best = r
		}
	}
	if best == nil || best.Excludes(path) {
		return nil
	}
	if best.MaxDepth >= 0 && depthBelow(path, best.Path) > best.MaxDepth {
		return nil
	}
	return best
}

// Roots returns the rule paths not contained in another rule's path, in
// walk order: the places a scan starts.
func (p *Policy) Roots() []string {
	var roots []string
	for _, r := range p.Rules { // sorted, so a containing root comes first
		if len(roots) > 0 && fim.IsWithin(r.Path, roots[len(roots)-1]) {
			continue
		}
		roots = append(roots, r.Path)
	}
	return roots
}

// Descend reports whether a walk must read the directory dir: some path
// below it is governed by a rule. That is the case when dir itself is
// monitored with depth to spare, or when another rule's root lies below dir
// even though dir is excluded or out of depth.
func (p *Policy) Descend(dir string) bool {
	if r := p.Lookup(dir); r != nil && (r.MaxDepth < 0 || depthBelow(dir, r.Path) < r.MaxDepth) {
		return true
	}
	for _, r := range p.Rules {
		if r.Path != dir && fim.IsWithin(r.Path, dir) {
			return true
		}
	}
	return false
}

// Excludes reports whether one of the rule's exclude patterns matches path.
func (r *Rule) Excludes(path string) bool {
	for _, g := range r.Exclude {
		if Match(g, path) {
			return true
		}
	}
	return false
}

func depthBelow(path, root string) int {
	if path == root {
		return 0
	}
	rest := strings.TrimPrefix(path[len(root):], "/")
	return strings.Count(rest, "/") + 1
}
