package policy

import (
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigilfim/vigil/internal/fim"
)

// MaxSize is the largest policy Parse accepts. Real policies are a few
// kilobytes; the limit keeps a wrong or hostile file from costing memory.
const MaxSize = 4 << 20

// Limits on single values, so that reports and lookups stay bounded.
const (
	maxNameLen  = 200
	maxOwnerLen = 128
	maxPathLen  = 4096 // PATH_MAX
	// maxRecurse bounds a depth limit: a path of PATH_MAX bytes has at
	// most 2048 components.
	maxRecurse = 4096
	maxSetName = 64
)

// The keys of each mapping, in the order Marshal writes them and error
// messages list them.
var (
	topKeys = []string{"version", "name", "attribute_sets", "defaults", "rules",
		"people", "roles", "pipelines", "sod", "evidence"}
	defaultsKeys = []string{"attributes", "hash", "severity", "cross_filesystems", "exclude", "tags", "owners"}
	ruleKeys     = []string{"path", "name", "recurse", "exclude", "attributes", "hash", "severity",
		"cross_filesystems", "tags", "owners"}
	// reservedTopKeys name sections later versions will add
	// (docs/policy.md, "Reserved sections"); until then they are errors
	// with a message that says so.
	reservedTopKeys = []string{"change_control", "witness", "notify"}
)

// Load reads and parses the policy file at path. Invalid policies yield an
// *ErrorList naming path; I/O failures a plain error.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	defer f.Close()
	// Read one byte past the limit so Parse can tell a file that is too
	// large from one that is exactly at the limit.
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and compiles a policy. filename is only used in error
// positions. Decoding is strict: unknown keys, wrong types and invalid
// values are all errors, and every error found is returned at once as an
// *ErrorList sorted by position. Parse never touches the file system.
func Parse(filename string, data []byte) (*Policy, error) {
	return parse(filename, data, MaxSize)
}

// parse is Parse with a size limit; negative means none.
func parse(filename string, data []byte, maxSize int) (*Policy, error) {
	p := &parser{decoder: decoder{file: filename}, sets: map[string]*setDef{}}
	if maxSize >= 0 && len(data) > maxSize {
		p.errorf(nil, "policy is larger than %d bytes", maxSize)
		return nil, p.errs.err()
	}
	root := p.parseYAML(data)
	if root == nil {
		return nil, p.errs.err()
	}
	pol := p.document(root)
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	pol.ChangeControl = p.changeControl(root, data)
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	return pol, nil
}

// parser holds the state of one Parse.
type parser struct {
	decoder
	sets     map[string]*setDef
	resolved []string // stack of sets being resolved, for cycle messages
}

// setDef is a user-defined attribute set.
type setDef struct {
	name  string
	node  *yaml.Node // the definition
	state uint8      // 0 not resolved, 1 resolving, 2 done
	check fim.Check
	ok    bool
}

// defaults are the values rules inherit.
type defaults struct {
	check    fim.Check
	hash     fim.HashAlg
	severity Severity
	cross    bool
	exclude  []string // as written; resolved against each rule's path
	tags     []string
	owners   []string
}

func (p *parser) document(n *yaml.Node) *Policy {
	f, _ := p.fields(n, "policy", topKeys, reservedTopKeys)
	if f == nil {
		return nil
	}
	// The version decides what everything else means, so a policy in an
	// unknown version is not read any further.
	if v, ok := f["version"]; !ok {
		p.errorf(n, "policy: missing key \"version\" (write version: 1)")
	} else {
		var ver int
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&ver) != nil {
			p.errorf(v, "version: expected the integer 1, found %s", describe(v))
			return nil
		}
		if ver != 1 {
			p.errorf(v, "version: unsupported version %d (this build reads version 1)", ver)
			return nil
		}
	}
	var name string
	if v, ok := f["name"]; !ok {
		p.errorf(n, "policy: missing key \"name\"")
	} else if s, ok := p.str(v, "name"); ok {
		if err := checkText(s, maxNameLen); err != nil {
			p.errorf(v, "name: %v", err)
		}
		name = s
	}
	if v, ok := f["attribute_sets"]; ok {
		p.attributeSets(v)
	}
	defs := defaults{check: fim.Check{Attrs: fim.AllAttrs}, hash: fim.SHA256, severity: SeverityMedium}
	if v, ok := f["defaults"]; ok {
		p.defaults(v, &defs)
	}
	var rules []*Rule
	if v, ok := f["rules"]; !ok {
		p.errorf(n, "policy: missing key \"rules\"")
	} else {
		rules = p.rules(v, &defs)
	}
	if len(p.errs.Errors) > 0 {
		return nil
	}
	var ev Evidence
	if v, ok := f["evidence"]; ok {
		ev = p.evidence(v)
	}
	if len(p.errs.Errors) > 0 {
		return nil
	}
	pol, err := New(name, rules)
	if err != nil {
		// The checks above cover everything New checks; reaching this
		// is a bug, still reported rather than hidden.
		p.errorf(n, "%v", err)
		return nil
	}
	pol.Evidence = ev
	return pol
}

func (p *parser) attributeSets(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "attribute_sets: expected a mapping, found %s", describe(n))
		return
	}
	var order []*setDef
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			p.errorf(k, "attribute_sets: names must be strings, found %s", describe(k))
			continue
		}
		if err := checkSetName(k.Value); err != nil {
			p.errorf(k, "attribute_sets: %v", err)
			continue
		}
		if first, dup := p.sets[k.Value]; dup {
			p.errorf(k, "attribute_sets: %q is defined twice (first at line %d)", k.Value, first.node.Line)
			continue
		}
		d := &setDef{name: k.Value, node: v}
		p.sets[k.Value] = d
		order = append(order, d)
	}
	// Resolve every set, used or not, so that all errors show up.
	for _, d := range order {
		p.resolveSet(d, nil)
	}
}

func checkSetName(name string) error {
	ok := name != "" && len(name) <= maxSetName && 'a' <= name[0] && name[0] <= 'z'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_'
	}
	switch {
	case !ok:
		return fmt.Errorf("set name %q must be lower case letters, digits and _, starting with a letter", name)
	case isAttrName(name):
		return fmt.Errorf("set name %q is the name of an attribute", name)
	}
	if _, builtin := lookupBuiltin(name); builtin {
		return fmt.Errorf("set name %q is a built-in set", name)
	}
	return nil
}

func isAttrName(name string) bool {
	_, err := fim.ParseAttr(name)
	return err == nil
}

// resolveSet computes a user set's check once; via is the item that
// referred to it, for the cycle message.
func (p *parser) resolveSet(d *setDef, via *yaml.Node) (fim.Check, bool) {
	switch d.state {
	case 2:
		return d.check, d.ok
	case 1:
		p.errorf(via, "attribute set %q refers to itself (%s -> %s)", d.name, strings.Join(p.resolved, " -> "), d.name)
		return fim.Check{}, false
	}
	d.state = 1
	p.resolved = append(p.resolved, d.name)
	d.check, d.ok = p.checkValue(d.node, "attribute_sets."+d.name)
	p.resolved = p.resolved[:len(p.resolved)-1]
	d.state = 2
	return d.check, d.ok
}

// namedSet returns the check of a built-in or user set.
func (p *parser) namedSet(name string, n *yaml.Node, key string) (fim.Check, bool) {
	if c, ok := lookupBuiltin(name); ok {
		return c, true
	}
	if d, ok := p.sets[name]; ok {
		return p.resolveSet(d, n)
	}
	if isAttrName(name) {
		p.errorf(n, "%s: %q is an attribute, not a set (write [%s])", key, name, name)
	} else {
		p.errorf(n, "%s: unknown attribute set %q (built in: %s)", key, name, builtinNames())
	}
	return fim.Check{}, false
}

// checkValue decodes an attributes value: a set name, or a list whose
// items are attribute names, "+set" to add a set and "-name" to remove an
// attribute or a set.
func (p *parser) checkValue(n *yaml.Node, key string) (fim.Check, bool) {
	if n.Kind == yaml.ScalarNode {
		s, ok := p.str(n, key)
		if !ok {
			return fim.Check{}, false
		}
		if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
			p.errorf(n, "%s: + and - compose sets inside a list (write [%s])", key, s)
			return fim.Check{}, false
		}
		return p.namedSet(s, n, key)
	}
	items, ok := p.list(n, key)
	if !ok {
		return fim.Check{}, false
	}
	var c fim.Check
	for _, it := range items {
		s, ok2 := p.str(it, key)
		if !ok2 {
			ok = false
			continue
		}
		switch {
		case strings.HasPrefix(s, "+"):
			sc, ok2 := p.namedSet(s[1:], it, key)
			ok = ok && ok2
			c.Attrs |= sc.Attrs
			c.Growing = c.Growing || sc.Growing
		case strings.HasPrefix(s, "-"):
			name := s[1:]
			if a, err := fim.ParseAttr(name); err == nil {
				c.Attrs = c.Attrs.Without(a)
				continue
			}
			sc, ok2 := p.namedSet(name, it, key)
			ok = ok && ok2
			c.Attrs &^= sc.Attrs
			if sc.Growing {
				c.Growing = false
			}
		default:
			a, err := fim.ParseAttr(s)
			if err == nil {
				c.Attrs = c.Attrs.With(a)
				continue
			}
			ok = false
			if _, builtin := lookupBuiltin(s); builtin || p.sets[s] != nil {
				p.errorf(it, "%s: %q is an attribute set (write +%s)", key, s, s)
			} else {
				p.errorf(it, "%s: %v", key, err)
			}
		}
	}
	return c, ok
}

func (p *parser) defaults(n *yaml.Node, defs *defaults) {
	f, _ := p.fields(n, "defaults", defaultsKeys, nil)
	if v, ok := f["attributes"]; ok {
		if c, ok := p.checkValue(v, "attributes"); ok {
			defs.check = c
		}
	}
	if v, ok := f["hash"]; ok {
		defs.hash = p.hash(v, defs.hash)
	}
	if v, ok := f["severity"]; ok {
		defs.severity = p.severity(v, defs.severity)
	}
	if v, ok := f["cross_filesystems"]; ok {
		defs.cross, _ = p.boolean(v, "cross_filesystems")
	}
	if v, ok := f["exclude"]; ok {
		for _, pat := range p.patterns(v, "") {
			defs.exclude = append(defs.exclude, pat.raw)
		}
	}
	if v, ok := f["tags"]; ok {
		defs.tags, _ = p.strList(v, "tags", checkTag)
	}
	if v, ok := f["owners"]; ok {
		defs.owners, _ = p.strList(v, "owners", func(s string) error { return checkText(s, maxOwnerLen) })
	}
}

func (p *parser) hash(n *yaml.Node, def fim.HashAlg) fim.HashAlg {
	s, ok := p.str(n, "hash")
	if !ok {
		return def
	}
	h, err := fim.ParseHashAlg(s)
	if err != nil {
		p.errorf(n, "hash: %v", err)
		return def
	}
	return h
}

func (p *parser) severity(n *yaml.Node, def Severity) Severity {
	s, ok := p.str(n, "severity")
	if !ok {
		return def
	}
	sev, err := ParseSeverity(s)
	if err != nil {
		p.errorf(n, "severity: %v", err)
		return def
	}
	return sev
}

// pattern is an exclude pattern as written, and where.
type pattern struct {
	raw  string
	node *yaml.Node
}

// patterns decodes an exclude list. With a root, relative patterns are
// resolved against it and anchored patterns that can never match below it
// are errors; without one (defaults), only the syntax is checked.
func (p *parser) patterns(n *yaml.Node, root string) []pattern {
	items, ok := p.list(n, "exclude")
	if !ok {
		return nil
	}
	var out []pattern
	seen := map[string]*yaml.Node{}
	for _, it := range items {
		raw, ok := p.str(it, "exclude")
		if !ok {
			continue
		}
		r := root
		if r == "" {
			r = "/"
		}
		g, err := compileGlob(resolvePattern(raw, r))
		switch {
		case err != nil:
			p.errorf(it, "exclude: %v", err)
			continue
		case root != "" && g.anchored && !g.mayMatchBelow(root):
			p.errorf(it, "exclude: %q can never match below the rule's path %s", raw, root)
			continue
		}
		if first, dup := seen[raw]; dup {
			p.errorf(it, "exclude: duplicate %q (first at line %d)", raw, first.Line)
			continue
		}
		seen[raw] = it
		out = append(out, pattern{raw, it})
	}
	return out
}
