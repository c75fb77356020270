package policy

import (
	"fmt"
	"slices"

	"github.com/vigilfim/vigil/internal/fim"
)

// Restrict returns the policy narrowed to the given absolute paths: rules
// whose roots lie within one of the paths are kept as they are, and each
// path that lies inside a rule gets a copy of that rule rooted at the path
// (so `vigil baseline --policy P /etc/ssh` monitors /etc/ssh exactly as P's
// /etc rule would). Paths no rule covers get the command-line defaults of
// ForPaths, as if given without a policy.
func (p *Policy) Restrict(paths []string) (*Policy, error) {
	var rules []*Rule
	have := map[string]bool{}
	add := func(r *Rule) {
		if !have[r.Path] {
			have[r.Path] = true
			rules = append(rules, r)
		}
	}
	for _, path := range paths {
		for _, r := range p.Rules {
			if fim.IsWithin(r.Path, path) {
				add(r)
			}
		}
		if have[path] {
			continue
		}
		if gov := p.governing(path); gov != nil {
			c := *gov
			c.Path = path
			if c.MaxDepth >= 0 {
				c.MaxDepth = max(0, c.MaxDepth-depthBelow(path, gov.Path))
			}
			c.Exclude = slices.Clone(gov.Exclude)
			add(&c)
			continue
		}
		add(ForPaths([]string{path}).Rules[0])
	}
	q, err := New(p.Name, rules)
	if err != nil {
		return nil, fmt.Errorf("restrict policy to %v: %w", paths, err)
	}
	return q, nil
}

// governing returns the deepest rule whose root contains path, ignoring
// excludes and depth (unlike Lookup).
func (p *Policy) governing(path string) *Rule {
	var best *Rule
	for _, r := range p.Rules {
		if fim.IsWithin(path, r.Path) && (best == nil || len(r.Path) > len(best.Path)) {
			best = r
		}
	}
	return best
}
