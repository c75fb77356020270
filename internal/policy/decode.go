package policy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// decoder turns YAML nodes into values, collecting every error with its
// position instead of stopping at the first.
type decoder struct {
	file string
	errs ErrorList
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: d.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.errs.add(e)
}

// parseYAML decodes data into a node tree, reporting syntax errors, extra
// documents, anchors and aliases. It returns nil when nothing usable came
// out.
func (d *decoder) parseYAML(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on hostile input before (CVE-2022-28948);
		// a policy file must never take the process down.
		if r := recover(); r != nil {
			d.errorf(nil, "parse yaml: internal error: %v", r)
			root = nil
		}
	}()
	root, err := decodeDocuments(data)
	switch {
	case errors.Is(err, errExtraDocument):
		d.errorf(root, "%v", err)
		return nil
	case err != nil:
		// yaml.v3 reports some syntax errors without a line and others
		// one line early (a 0-based line where 1-based is expected), so
		// the line is searched for; the parser's is the fallback.
		msg := syntaxErrorMessage(err)
		line := 0
		if len(data) <= maxLocateSize {
			line = locateSyntaxError(data, msg)
		}
		if line == 0 {
			line = syntaxErrorLine(err)
		}
		d.errs.add(&Error{File: d.file, Line: line, Msg: "invalid yaml: " + msg})
		return nil
	case root == nil || len(root.Content) == 0:
		d.errorf(nil, "empty policy")
		return nil
	}
	// Aliases make the shape of the document something else than what is
	// written, so nothing more is checked when there are any.
	if d.checkNoAliases(root); len(d.errs.Errors) > 0 {
		return nil
	}
	return root.Content[0]
}

var errExtraDocument = errors.New("a policy file holds one YAML document, found more")

// decodeDocuments decodes the first document and makes sure there is no
// second one. With errExtraDocument it returns the second document's node.
func decodeDocuments(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return &doc, nil
	case err != nil:
		return nil, err
	}
	return &extra, errExtraDocument
}

// maxLocateSize bounds the input locateSyntaxError searches: its parses
// cost about a second per megabyte of YAML, and real policies are a few
// kilobytes. Larger inputs get the parser's own line.
const maxLocateSize = 64 << 10

// syntaxErrorLine returns the line of a "yaml: line N: ..." error, or 0.
func syntaxErrorLine(err error) int {
	rest, ok := strings.CutPrefix(err.Error(), "yaml: line ")
	if !ok {
		return 0
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0
	}
	return n
}

// syntaxErrorMessage strips "yaml: " and "line N: " from a parser error.
func syntaxErrorMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			return after
		}
	}
	return msg
}

// locateSyntaxError finds the line of a syntax error: the first line at
// which a prefix of the input fails with the same message (msg as returned
// by syntaxErrorMessage). For an unclosed bracket that is the line that
// opened it. It binary-searches, so it costs a few parses of the input,
// and only ever runs on invalid input. It returns 0 if the search fails.
func locateSyntaxError(data []byte, msg string) int {
	var ends []int // ends[i] is the offset just past line i+1
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(lines int) bool {
		_, err := decodeDocuments(data[:ends[lines-1]])
		return err != nil && !errors.Is(err, errExtraDocument) && syntaxErrorMessage(err) == msg
	}
	lo, hi := 1, len(ends) // the answer is in [lo, hi] if fails(hi)
	if !fails(hi) {
		return 0
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// checkNoAliases rejects anchors and aliases. Policies have attribute sets
// and defaults for reuse; aliases would only add a way to blow up the
// input (billion laughs) and a second way to say the same thing.
func (d *decoder) checkNoAliases(n *yaml.Node) {
	if n.Kind == yaml.AliasNode {
		d.errorf(n, "yaml aliases are not supported (use attribute_sets or defaults)")
		return
	}
	if n.Anchor != "" {
		d.errorf(n, "yaml anchors are not supported (use attribute_sets or defaults)")
	}
	for _, c := range n.Content {
		d.checkNoAliases(c)
	}
}

// describe names what a node holds, for type errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.Tag {
	case "!!str":
		return fmt.Sprintf("the string %q", short(n.Value))
	case "!!int":
		return "the integer " + short(n.Value)
	case "!!float":
		return "the number " + short(n.Value)
	case "!!bool":
		return "the boolean " + n.Value
	case "!!null":
		return "null"
	case "!!timestamp":
		return "the timestamp " + short(n.Value)
	case "!!binary":
		return "binary data"
	}
	return "a value tagged " + short(n.Tag)
}

// short truncates a value quoted in an error message, so that one long
// line of input does not make a message of megabytes.
func short(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// quoteHint suggests quoting a plain scalar that YAML read as something
// other than a string.
func quoteHint(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Style == 0 && n.Tag != "!!null" && n.Tag != "!!str" {
		return fmt.Sprintf(" (quote it: %q)", short(n.Value))
	}
	return ""
}

// str decodes a string. Binary scalars (!!binary) are accepted because
// YAML encoders, Marshal included, write strings that are not valid UTF-8
// that way; such paths exist on Linux.
func (d *decoder) str(n *yaml.Node, key string) (string, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!str":
			return n.Value, true
		case "!!binary":
			b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
			if err != nil {
				d.errorf(n, "%s: bad !!binary value: %v", key, err)
				return "", false
			}
			return string(b), true
		}
	}
	d.errorf(n, "%s: expected a string, found %s%s", key, describe(n), quoteHint(n))
	return "", false
}

func (d *decoder) boolean(n *yaml.Node, key string) (bool, bool) {
	var b bool
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" && n.Decode(&b) == nil {
		return b, true
	}
	d.errorf(n, "%s: expected true or false, found %s", key, describe(n))
	return false, false
}

// list returns the items of a sequence node.
func (d *decoder) list(n *yaml.Node, key string) ([]*yaml.Node, bool) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: expected a list, found %s", key, describe(n))
		return nil, false
	}
	return n.Content, true
}

// strList decodes a list of strings, reporting duplicates; check, if not
// nil, validates each item.
func (d *decoder) strList(n *yaml.Node, key string, check func(string) error) ([]string, bool) {
	items, ok := d.list(n, key)
	if !ok {
		return nil, false
	}
	var out []string
	seen := map[string]*yaml.Node{}
	for _, it := range items {
		s, ok2 := d.str(it, key)
		if !ok2 {
			ok = false
			continue
		}
		if check != nil {
			if err := check(s); err != nil {
				d.errorf(it, "%s: %v", key, err)
				ok = false
				continue
			}
		}
		if first, dup := seen[s]; dup {
			d.errorf(it, "%s: duplicate %q (first at line %d)", key, s, first.Line)
			ok = false
			continue
		}
		seen[s] = it
		out = append(out, s)
	}
	return out, ok
}

// fields checks that n is a mapping with string keys, no duplicates and
// only known keys, and returns the values by key. reserved keys get a
// message saying they are planned but not yet understood.
func (d *decoder) fields(n *yaml.Node, what string, known, reserved []string) (map[string]*yaml.Node, bool) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: expected a mapping, found %s", what, describe(n))
		return nil, false
	}
	out := map[string]*yaml.Node{}
	keys := map[string]*yaml.Node{}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			d.errorf(k, "%s: keys must be strings, found %s", what, describe(k))
			ok = false
			continue
		}
		if first, dup := keys[k.Value]; dup {
			d.errorf(k, "%s: duplicate key %q (first at line %d)", what, k.Value, first.Line)
			ok = false
			continue
		}
		keys[k.Value] = k
		switch {
		case slices.Contains(known, k.Value):
			out[k.Value] = v
		case slices.Contains(reserved, k.Value):
			d.errorf(k, "%s: key %q is reserved for a later version of the policy language", what, k.Value)
			ok = false
		default:
			d.errorf(k, "%s: unknown key %q%s", what, short(k.Value), suggest(k.Value, known))
			ok = false
		}
	}
	return out, ok
}

// suggest proposes the closest known key to a misspelt one.
func suggest(key string, known []string) string {
	best, bestDist := "", 3 // more than two edits away is not a typo
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
}

// editDistance is the Levenshtein distance between short strings.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkText validates free text such as names and owners: printable UTF-8
// without surrounding space, at most max bytes. Reports and logs render it.
func checkText(s string, max int) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.TrimSpace(s) != s:
		return errors.New("has leading or trailing space")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("contains the non-printable character %U", r)
		}
	}
	return nil
}

// maxTagLen bounds a control tag; real ones are a dozen characters.
const maxTagLen = 64

// checkTag validates a control identifier such as "PCI-11.5.2": an ASCII
// letter or digit, then letters, digits and . _ : / + -. No spaces, so
// tags survive CSV, query strings and shell arguments unquoted.
func checkTag(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > maxTagLen {
		return fmt.Errorf("longer than %d bytes", maxTagLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._:/+-", rune(c))) {
			return fmt.Errorf("%q is not a control identifier (letters, digits and . _ : / + -, starting with a letter or digit)", s)
		}
	}
	return nil
}
