// Package policy defines what Vigil monitors: rules that name roots, how
// deep to descend, what to exclude, which attributes to compare, which hash
// to use, and the severity, control tags and owners attached to findings.
//
// Policies are written in YAML (docs/policy.md), decoded strictly (an
// unknown key is an error, and every error is reported with file:line:col),
// and compiled into a Policy whose lookups are pure functions of a path.
// Marshal writes a compiled policy back as canonical YAML, which baselines
// embed so that a later check uses exactly the policy the baseline was
// made with.
package policy

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
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

// ParseSeverity returns the severity with the given name.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if n == name {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (known: %s)", name, strings.Join(severityNames[:], ", "))
}

// MarshalText encodes the severity as its name, for JSON and flags.
func (s Severity) MarshalText() ([]byte, error) {
	if int(s) >= len(severityNames) {
		return nil, fmt.Errorf("marshal severity: unknown severity %d", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Rule says how one tree is monitored.
type Rule struct {
	// Name identifies the rule in reports; defaults to the path.
	Name string
	// Path is the absolute, clean root of the rule.
	Path string
	// MaxDepth limits descent below Path: 0 is Path alone, -1 unlimited.
	MaxDepth int
	// Exclude holds glob patterns (see Match) of paths not monitored: a
	// path is excluded when it, or one of its ancestors strictly below
	// Path, matches. An excluded directory is not descended into. Patterns
	// are stored resolved: base-name patterns ("*.swp") or absolute ones.
	Exclude []string
	// Check is what is compared for entries under the rule.
	Check fim.Check
	// Hash is the content hash algorithm.
	Hash fim.HashAlg
	// CrossFilesystems allows descending into other mounted file systems.
	// Off by default: a scan of / must not wander into /proc or NFS.
	CrossFilesystems bool
	// Severity is attached to every change found under the rule.
	Severity Severity
	// Tags are control identifiers such as "PCI-11.5.2".
	Tags []string
	// Owners are the people or teams responsible for the files.
	Owners []string
}

// Policy is a compiled policy. Policies returned by Parse, Load, New,
// Default and ForPaths carry a precompiled index that makes Lookup cheap;
// they must not be modified afterwards. A Policy assembled by hand works
// too, with slower lookups.
type Policy struct {
	// Name is a free-text name for reports.
	Name string
	// Rules are sorted by path (fim.ComparePaths); paths are unique.
	Rules []*Rule
	// ChangeControl holds the people, roles, pipelines and sod sections
	// as text, for internal/change to decode; zero when there are none.
	ChangeControl ChangeControl
	// Evidence configures witnesses and checkpointing of the evidence log.
	Evidence Evidence

	ix *index
}

// New validates rules and compiles them into a Policy. It sorts a copy of
// the slice (the rules themselves are shared, not copied). Paths must be
// absolute, clean and unique; patterns must compile.
func New(name string, rules []*Rule) (*Policy, error) {
	p := &Policy{Name: name, Rules: slices.Clone(rules)}
	sortRules(p.Rules)
	for i, r := range p.Rules {
		if err := checkRule(r); err != nil {
			return nil, fmt.Errorf("compile policy: rule %q: %w", r.Path, err)
		}
		if i > 0 && p.Rules[i-1].Path == r.Path {
			return nil, fmt.Errorf("compile policy: duplicate rule path %q", r.Path)
		}
	}
	ix, err := buildIndex(p.Rules)
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	p.ix = ix
	return p, nil
}

func sortRules(rules []*Rule) {
	slices.SortFunc(rules, func(a, b *Rule) int { return fim.ComparePaths(a.Path, b.Path) })
}

func checkRule(r *Rule) error {
	switch {
	case !filepath.IsAbs(r.Path) || filepath.Clean(r.Path) != r.Path:
		return fmt.Errorf("path is not absolute and clean")
	case strings.IndexByte(r.Path, 0) >= 0:
		return fmt.Errorf("path contains a NUL byte")
	case r.MaxDepth < -1:
		return fmt.Errorf("max depth %d is below -1", r.MaxDepth)
	case r.Hash != fim.SHA256 && r.Hash != fim.BLAKE3:
		return fmt.Errorf("unsupported hash %v", r.Hash)
	case int(r.Severity) >= len(severityNames):
		return fmt.Errorf("unknown severity %d", r.Severity)
	case r.Check.Attrs&^fim.AllAttrs != 0:
		return fmt.Errorf("unknown attributes %#x", uint32(r.Check.Attrs&^fim.AllAttrs))
	}
	return nil
}

// Lookup returns the rule governing path: the rule with the deepest root
// containing it. It returns nil when no rule covers the path, the path is
// excluded by the governing rule (Rule.Excludes), or it lies deeper than
// the rule's MaxDepth. path must be absolute and clean.
func (p *Policy) Lookup(path string) *Rule {
	if p.ix != nil {
		return p.ix.lookup(path)
	}
	var best *Rule
	for _, r := range p.Rules {
		if fim.IsWithin(path, r.Path) && (best == nil || len(r.Path) > len(best.Path)) {
			best = r
		}
	}
	if best == nil || best.Excludes(path) || !withinDepth(path, best) {
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
	if p.ix != nil {
		return p.ix.descend(dir)
	}
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

// Excludes reports whether the rule excludes path: one of its patterns
// matches path or an ancestor of path strictly below the rule's Path. The
// rule's own Path is never excluded, and path must lie within it.
// Malformed patterns match nothing (Parse and New reject them).
func (r *Rule) Excludes(path string) bool {
	if path == r.Path || !fim.IsWithin(path, r.Path) {
		return false
	}
	for _, pat := range r.Exclude {
		g, err := compileGlob(pat)
		if err != nil {
			continue
		}
		if g.anchored {
			if g.matchBelow(path, r.Path) {
				return true
			}
		} else if matchBaseBelow(g.base, path, r.Path) {
			return true
		}
	}
	return false
}

// matchBaseBelow reports whether s matches the base name of path or of an
// ancestor strictly below root.
func matchBaseBelow(s segment, path, root string) bool {
	rest := path[len(root):]
	if root == "/" {
		rest = path
	}
	for len(rest) > 1 { // rest starts with '/'
		rest = rest[1:]
		c := rest
		if k := strings.IndexByte(rest, '/'); k >= 0 {
			c, rest = rest[:k], rest[k:]
		} else {
			rest = ""
		}
		if s.match(c) {
			return true
		}
	}
	return false
}

// Equal reports whether two policies have the same name and rules, field
// by field; a nil and an empty list are equal.
func (p *Policy) Equal(q *Policy) bool {
	if p.Name != q.Name || len(p.Rules) != len(q.Rules) || !bytes.Equal(p.ChangeControl.Text, q.ChangeControl.Text) || !p.Evidence.Equal(q.Evidence) {
		return false
	}
	for i, r := range p.Rules {
		if !r.Equal(q.Rules[i]) {
			return false
		}
	}
	return true
}

// Equal reports whether two rules are the same field by field; a nil and
// an empty list are equal.
func (r *Rule) Equal(o *Rule) bool {
	return r.Name == o.Name && r.Path == o.Path && r.MaxDepth == o.MaxDepth &&
		slices.Equal(r.Exclude, o.Exclude) && r.Check == o.Check && r.Hash == o.Hash &&
		r.CrossFilesystems == o.CrossFilesystems && r.Severity == o.Severity &&
		slices.Equal(r.Tags, o.Tags) && slices.Equal(r.Owners, o.Owners)
}

func withinDepth(path string, r *Rule) bool {
	return r.MaxDepth < 0 || depthBelow(path, r.Path) <= r.MaxDepth
}

// depthBelow counts the components of path below root; path must lie
// within root.
func depthBelow(path, root string) int {
	if path == root {
		return 0
	}
	rest := path[len(root):]
	if root == "/" {
		rest = path
	}
	return strings.Count(rest, "/")
}
