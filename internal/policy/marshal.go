package policy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Marshal writes p as canonical YAML: version, name and the rules in path
// order, each with every field spelt out and defaults, attribute sets and
// relative patterns already resolved (only a name equal to the path is
// left out), so the output reads the same whatever the source looked like.
// Parse(Marshal(p)) yields a policy equal to p (Policy.Equal); Marshal
// checks that before returning, so a policy built by hand that Parse would
// reject is an error here too.
//
// The text is written here rather than by a YAML library's emitter: the
// bytes end up in baselines, so they must not change with a library
// upgrade, and the emitter of gopkg.in/yaml.v3 is slow on large policies.
func Marshal(p *Policy) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("version: 1\nname: ")
	writeScalar(&b, p.Name, false)
	b.WriteString("\nrules:\n")
	for _, r := range p.Rules {
		writeRule(&b, r)
	}
	// The change-control sections are written as they were found: their
	// schema belongs to internal/change, and their text is already what
	// a round trip must reproduce.
	b.Write(p.ChangeControl.Text)
	writeEvidence(&b, p.Evidence)
	out := b.Bytes()
	// Canonical output is larger than a compact source, so the size limit
	// of Parse does not apply to the check.
	back, err := parse("marshalled policy", out, -1)
	if err != nil {
		return nil, fmt.Errorf("marshal policy: result does not parse: %w", err)
	}
	if !back.Equal(p) {
		return nil, fmt.Errorf("marshal policy: %q does not survive a round trip (rules unsorted or not canonical?)", p.Name)
	}
	return out, nil
}

func writeRule(b *bytes.Buffer, r *Rule) {
	b.WriteString("  - path: ")
	writeScalar(b, r.Path, false)
	b.WriteByte('\n')
	if r.Name != r.Path { // Parse names a rule by its path by default
		b.WriteString("    name: ")
		writeScalar(b, r.Name, false)
		b.WriteByte('\n')
	}
	b.WriteString("    recurse: ")
	switch {
	case r.MaxDepth < 0:
		b.WriteString("true")
	case r.MaxDepth == 0:
		b.WriteString("false")
	default:
		b.WriteString(strconv.Itoa(r.MaxDepth))
	}
	b.WriteByte('\n')
	if len(r.Exclude) > 0 {
		b.WriteString("    exclude: ")
		writeList(b, r.Exclude)
	}
	b.WriteString("    attributes: ")
	if set, items := canonicalAttributes(r.Check); set != "" {
		b.WriteString(set)
		b.WriteByte('\n')
	} else {
		writeList(b, items)
	}
	fmt.Fprintf(b, "    hash: %s\n    severity: %s\n    cross_filesystems: %t\n", r.Hash, r.Severity, r.CrossFilesystems)
	if len(r.Tags) > 0 {
		b.WriteString("    tags: ")
		writeList(b, r.Tags)
	}
	if len(r.Owners) > 0 {
		b.WriteString("    owners: ")
		writeList(b, r.Owners)
	}
}

// writeList writes a flow sequence and a newline.
func writeList(b *bytes.Buffer, items []string) {
	b.WriteByte('[')
	for i, s := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		writeScalar(b, s, true)
	}
	b.WriteString("]\n")
}

// writeScalar writes s plain when that is unambiguous (flow: inside a flow
// sequence), else double-quoted.
// Go's quoting of valid UTF-8 is valid YAML: its escapes (\n, \t, \xNN
// below 0x80, \uNNNN, \UNNNNNNNN) mean the same in both. Bytes that are
// not UTF-8, possible in Linux paths, go out as !!binary.
func writeScalar(b *bytes.Buffer, s string, flow bool) {
	switch {
	case !utf8.ValidString(s):
		b.WriteString("!!binary ")
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s)))
	case plainSafe(s, flow):
		b.WriteString(s)
	default:
		b.WriteString(strconv.Quote(s))
	}
}

// plainSafe reports whether s can be written as a plain scalar and still
// read back as the same string: it starts with a letter or '/', holds
// only letters, digits, "/_.+-@" and, inside (flow) or outside a flow
// sequence, single inner spaces and "()'&" (and ',' outside), never ':'
// or '#', and is not a word YAML reads as a boolean or null.
func plainSafe(s string, flow bool) bool {
	if s == "" || s[len(s)-1] == ' ' {
		return false
	}
	c := s[0]
	if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '/') {
		return false
	}
	extra := "/_.+-@ ()'&,"
	if flow {
		extra = "/_.+-@ ()'&"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0
		if !ok || c == ' ' && s[i-1] == ' ' {
			return false
		}
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null":
		return false
	}
	return true
}
