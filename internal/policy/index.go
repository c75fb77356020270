package policy

import (
	"fmt"
	"strings"

	"github.com/vigilfim/vigil/internal/fim"
)

// index is a policy compiled for lookups, which run once per file of
// trees with millions of files: finding the governing rule is a binary
// search plus a walk up a short chain, and exclude checks compare strings
// against precompiled patterns. Nothing in it allocates.
type index struct {
	paths []string   // the rules' paths, in fim.ComparePaths order
	rules []compiled // parallel to paths
}

// compiled is one rule prepared for lookups.
type compiled struct {
	rule *Rule
	// parent is the index of the nearest rule whose path contains this
	// rule's path, or -1.
	parent int
	// base holds base-name patterns, literals the paths of anchored
	// patterns without metacharacters, globs the other anchored patterns.
	// Anchored patterns that cannot match below the rule are left out.
	base     []segment
	literals []string
	globs    []*glob
}

// buildIndex compiles rules, which must be sorted and unique.
func buildIndex(rules []*Rule) (*index, error) {
	ix := &index{paths: make([]string, len(rules)), rules: make([]compiled, len(rules))}
	var stack []int // chain of rules containing the current one
	for i, r := range rules {
		c := compiled{rule: r, parent: -1}
		for len(stack) > 0 && !fim.IsWithin(r.Path, rules[stack[len(stack)-1]].Path) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			c.parent = stack[len(stack)-1]
		}
		stack = append(stack, i)
		for _, pat := range r.Exclude {
			g, err := compileGlob(pat)
			if err != nil {
				return nil, fmt.Errorf("rule %q: exclude %q: %w", r.Path, pat, err)
			}
			switch {
			case !g.anchored:
				c.base = append(c.base, g.base)
			case !g.mayMatchBelow(r.Path):
			case g.literal != "":
				c.literals = append(c.literals, g.literal)
			default:
				c.globs = append(c.globs, g)
			}
		}
		ix.rules[i] = c
		ix.paths[i] = r.Path
	}
	return ix, nil
}

// find returns the index of the rule with the deepest path containing
// path, or -1.
func (ix *index) find(path string) int {
	// The rules are in walk order, where every path's subtree is one
	// contiguous run right after it. The deepest rule containing path is
	// therefore the last rule sorting at or before path, or one of that
	// rule's ancestors.
	i := ix.upTo(path) - 1
	for i >= 0 && !isWithin(path, ix.paths[i]) {
		i = ix.rules[i].parent
	}
	return i
}

// upTo returns the number of rule paths sorting at or before path.
func (ix *index) upTo(path string) int {
	lo, hi := 0, len(ix.paths)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if fim.ComparePaths(ix.paths[mid], path) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (ix *index) lookup(path string) *Rule {
	i := ix.find(path)
	if i < 0 {
		return nil
	}
	c := &ix.rules[i]
	if !withinDepth(path, c.rule) || c.excludes(path) {
		return nil
	}
	return c.rule
}

func (ix *index) descend(dir string) bool {
	if i := ix.find(dir); i >= 0 {
		c := &ix.rules[i]
		r := c.rule
		if (r.MaxDepth < 0 || depthBelow(dir, r.Path) < r.MaxDepth) && !c.excludes(dir) {
			return true
		}
	}
	// Is a rule's root strictly below dir? Its subtree follows dir.
	j := ix.upTo(dir)
	return j < len(ix.paths) && isWithin(ix.paths[j], dir)
}

// excludes is Rule.Excludes over the compiled patterns.
func (c *compiled) excludes(path string) bool {
	root := c.rule.Path
	if path == root {
		return false
	}
	for _, l := range c.literals {
		if isWithin(path, l) {
			return true
		}
	}
	for _, g := range c.globs {
		if g.matchBelow(path, root) {
			return true
		}
	}
	if len(c.base) == 0 {
		return false
	}
	// One pass over the components below root, each tried against every
	// base-name pattern.
	rest := path[len(root):]
	if root == "/" {
		rest = path
	}
	for len(rest) > 1 {
		rest = rest[1:]
		comp := rest
		if k := strings.IndexByte(rest, '/'); k >= 0 {
			comp, rest = rest[:k], rest[k:]
		} else {
			rest = ""
		}
		for _, s := range c.base {
			if s.match(comp) {
				return true
			}
		}
	}
	return false
}
