package policy

import (
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

func (p *parser) rules(n *yaml.Node, defs *defaults) []*Rule {
	items, ok := p.list(n, "rules")
	if !ok {
		return nil
	}
	if len(items) == 0 {
		p.errorf(n, "rules: a policy needs at least one rule")
		return nil
	}
	paths := map[string]*yaml.Node{}
	names := map[string]*yaml.Node{}
	var out []*Rule
	for _, it := range items {
		r, nameNode := p.rule(it, defs)
		if r == nil {
			continue
		}
		if first, dup := paths[r.Path]; dup {
			p.errorf(it, "rule: duplicate path %s (first at line %d)", r.Path, first.Line)
			continue
		}
		paths[r.Path] = it
		if first, dup := names[r.Name]; dup {
			p.errorf(nameNode, "rule: duplicate name %q (first at line %d)", r.Name, first.Line)
			continue
		}
		names[r.Name] = nameNode
		out = append(out, r)
	}
	return out
}

// rule decodes one rule, applying defaults. It returns nil if the path is
// missing or invalid, and the node that gave the rule its name.
func (p *parser) rule(n *yaml.Node, defs *defaults) (*Rule, *yaml.Node) {
	f, _ := p.fields(n, "rule", ruleKeys, nil)
	if f == nil {
		return nil, nil
	}
	pathNode, ok := f["path"]
	if !ok {
		p.errorf(n, "rule: missing key \"path\"")
	}
	path, pathOK := "", false
	if ok {
		path, pathOK = p.rulePath(pathNode)
	}
	r := &Rule{
		Path:             path,
		Name:             path,
		MaxDepth:         -1,
		Check:            defs.check,
		Hash:             defs.hash,
		Severity:         defs.severity,
		CrossFilesystems: defs.cross,
	}
	nameNode := pathNode
	if v, ok := f["name"]; ok {
		if s, ok := p.str(v, "name"); ok {
			if err := checkText(s, maxNameLen); err != nil {
				p.errorf(v, "name: %v", err)
			}
			r.Name, nameNode = s, v
		}
	}
	if v, ok := f["recurse"]; ok {
		r.MaxDepth = p.recurse(v)
	}
	if v, ok := f["attributes"]; ok {
		r.Check, _ = p.checkValue(v, "attributes")
	}
	if v, ok := f["hash"]; ok {
		r.Hash = p.hash(v, r.Hash)
	}
	if v, ok := f["severity"]; ok {
		r.Severity = p.severity(v, r.Severity)
	}
	if v, ok := f["cross_filesystems"]; ok {
		r.CrossFilesystems, _ = p.boolean(v, "cross_filesystems")
	}
	var tags, owners []string
	if v, ok := f["tags"]; ok {
		tags, _ = p.strList(v, "tags", checkTag)
	}
	if v, ok := f["owners"]; ok {
		owners, _ = p.strList(v, "owners", func(s string) error { return checkText(s, maxOwnerLen) })
	}
	r.Tags = merge(defs.tags, tags)
	r.Owners = merge(defs.owners, owners)
	if !pathOK {
		return nil, nil
	}
	r.Exclude = inherited(defs.exclude, path)
	if v, ok := f["exclude"]; ok {
		var own []string
		for _, pat := range p.patterns(v, path) {
			own = append(own, resolvePattern(pat.raw, path))
		}
		r.Exclude = merge(r.Exclude, own)
	}
	return r, nameNode
}

// rulePath validates and cleans a rule's path. A trailing slash is fine;
// ".." is not: the walk does not follow symbolic links, so a lexically
// cleaned ".." could name a different file than the kernel would.
func (p *parser) rulePath(n *yaml.Node) (string, bool) {
	s, ok := p.str(n, "path")
	if !ok {
		return "", false
	}
	bad := func(msg string) (string, bool) {
		p.errorf(n, "path: %s", msg)
		return "", false
	}
	switch {
	case s == "":
		return bad("must not be empty")
	case len(s) > maxPathLen:
		return bad("longer than PATH_MAX (4096 bytes)")
	case strings.IndexByte(s, 0) >= 0:
		return bad("contains a NUL byte")
	case !filepath.IsAbs(s):
		return bad("\"" + s + "\" is not absolute")
	case slices.Contains(strings.Split(s, "/"), ".."):
		return bad("\"" + s + "\" contains a \"..\" component")
	}
	return filepath.Clean(s), true
}

// recurse decodes true (unlimited, -1), false (the path alone, 0) or a
// depth.
func (p *parser) recurse(n *yaml.Node) int {
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				if b {
					return -1
				}
				return 0
			}
		case "!!int":
			var d int64
			if n.Decode(&d) == nil && d >= 0 && d <= maxRecurse {
				return int(d)
			}
			p.errorf(n, "recurse: depth %s is out of range [0, %d]", n.Value, maxRecurse)
			return -1
		}
	}
	p.errorf(n, "recurse: expected true, false or a depth, found %s", describe(n))
	return -1
}

// inherited resolves the default exclude patterns for one rule, leaving
// out anchored patterns that cannot match below its path (a default
// "/etc/mtab" means nothing to a rule on /usr/bin).
func inherited(raw []string, root string) []string {
	var out []string
	for _, pat := range raw {
		res := resolvePattern(pat, root)
		g, err := compileGlob(res)
		if err != nil || (g.anchored && !g.mayMatchBelow(root)) {
			continue
		}
		out = append(out, res)
	}
	return merge(nil, out)
}

// merge appends the items of b missing from a, keeping order, and returns
// nil rather than an empty list.
func merge(a, b []string) []string {
	var out []string
	seen := make(map[string]bool, len(a)+len(b))
	for _, s := range slices.Concat(a, b) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
