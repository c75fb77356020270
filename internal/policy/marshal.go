package policy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Marshal writes p as canonical YAML: version, name and the rules in path
// order, each with every field spelt out and defaults, attribute sets and
// relative patterns already resolved (only a name equal to the path is
// left out), so the output reads the same
// whatever the source looked like. Parse(Marshal(p)) yields a policy equal
// to p (Policy.Equal); Marshal checks that before returning, so a policy
// built by hand that Parse would reject is an error here too.
func Marshal(p *Policy) ([]byte, error) {
	doc := mapping(
		"version", scalar("!!int", "1"),
		"name", str(p.Name),
	)
	var rules []*yaml.Node
	for _, r := range p.Rules {
		rules = append(rules, marshalRule(r))
	}
	doc.Content = append(doc.Content, str("rules"), &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: rules})

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("marshal policy: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal policy: %w", err)
	}
	out := buf.Bytes()
	back, err := Parse("marshalled policy", out)
	if err != nil {
		return nil, fmt.Errorf("marshal policy: result does not parse: %w", err)
	}
	if !back.Equal(p) {
		return nil, fmt.Errorf("marshal policy: %q does not survive a round trip (rules unsorted or not canonical?)", p.Name)
	}
	return out, nil
}

func marshalRule(r *Rule) *yaml.Node {
	recurse := scalar("!!bool", "true")
	switch {
	case r.MaxDepth == 0:
		recurse = scalar("!!bool", "false")
	case r.MaxDepth > 0:
		recurse = scalar("!!int", strconv.Itoa(r.MaxDepth))
	}
	set, items := canonicalAttributes(r.Check)
	attrs := str(set)
	if set == "" {
		attrs = strs(items)
	}
	n := mapping("path", str(r.Path))
	if r.Name != r.Path { // Parse names a rule by its path by default
		n.Content = append(n.Content, str("name"), str(r.Name))
	}
	n.Content = append(n.Content, str("recurse"), recurse)
	if len(r.Exclude) > 0 {
		n.Content = append(n.Content, str("exclude"), strs(r.Exclude))
	}
	n.Content = append(n.Content,
		str("attributes"), attrs,
		str("hash"), str(r.Hash.String()),
		str("severity"), str(r.Severity.String()),
		str("cross_filesystems"), scalar("!!bool", strconv.FormatBool(r.CrossFilesystems)),
	)
	if len(r.Tags) > 0 {
		n.Content = append(n.Content, str("tags"), strs(r.Tags))
	}
	if len(r.Owners) > 0 {
		n.Content = append(n.Content, str("owners"), strs(r.Owners))
	}
	return n
}

func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i < len(kv); i += 2 {
		n.Content = append(n.Content, str(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// str encodes a string; bytes that are not UTF-8 (possible in Linux paths)
// go out as !!binary, which Parse reads back.
func str(s string) *yaml.Node {
	if !utf8.ValidString(s) {
		return scalar("!!binary", base64.StdEncoding.EncodeToString([]byte(s)))
	}
	return scalar("!!str", s)
}

func strs(items []string) *yaml.Node {
	// Flow style keeps rules short: these lists are short words.
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, s := range items {
		n.Content = append(n.Content, str(s))
	}
	return n
}
