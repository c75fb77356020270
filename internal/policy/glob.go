package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Glob syntax (docs/policy.md, "Exclude patterns"):
//
//   - Each path component is matched with path.Match syntax: '*' and '?'
//     never cross a '/', "[...]" is a character class, '\' escapes.
//   - "**" as a whole component matches zero or more components.
//   - A pattern without a slash matches a base name ("*.swp").
//   - A pattern starting with '/' matches a whole path ("/etc/**/*.bak").
//
// Patterns are compiled once into segments so that the per-file cost of an
// exclude check is a few string comparisons, not a re-parse of the pattern.

// maxPatternLen bounds a pattern's length; PATH_MAX is 4096.
const maxPatternLen = 4096

// errBadPattern is wrapped by every pattern compile error.
var errBadPattern = errors.New("bad pattern")

type segKind uint8

const (
	segLiteral    segKind = iota // component == text
	segAny                       // "*": any component
	segPrefix                    // "text*"
	segSuffix                    // "*text"
	segGlob                      // anything else: path.Match
	segDoubleStar                // "**": zero or more components
)

// segment matches one path component (or, for "**", a run of them).
type segment struct {
	kind segKind
	text string
}

func (s segment) match(c string) bool {
	switch s.kind {
	case segLiteral:
		return c == s.text
	case segAny:
		return true
	case segPrefix:
		return strings.HasPrefix(c, s.text)
	case segSuffix:
		return strings.HasSuffix(c, s.text)
	case segGlob:
		ok, _ := path.Match(s.text, c) // validated at compile time
		return ok
	}
	return false
}

// glob is a compiled pattern.
type glob struct {
	// anchored patterns match whole absolute paths; the others match base
	// names, with base holding their only segment.
	anchored bool
	base     segment
	segs     []segment
	// literal is set for anchored patterns without metacharacters: the
	// path itself, so matching is a string comparison.
	literal string
	// prefix is the longest leading run of literal components of an
	// anchored pattern, as a path ("/" when the first is not literal).
	prefix string
}

// compileGlob compiles a base-name pattern or an absolute pattern. Relative
// patterns containing a slash must be resolved against a rule path first
// (resolvePattern).
func compileGlob(pattern string) (*glob, error) {
	switch {
	case pattern == "":
		return nil, fmt.Errorf("%w: empty pattern", errBadPattern)
	case len(pattern) > maxPatternLen:
		return nil, fmt.Errorf("%w: longer than %d bytes", errBadPattern, maxPatternLen)
	case strings.IndexByte(pattern, 0) >= 0:
		return nil, fmt.Errorf("%w: contains a NUL byte", errBadPattern)
	}
	if !strings.Contains(pattern, "/") {
		s, err := compileSegment(pattern)
		if err != nil {
			return nil, err
		}
		if s.kind == segDoubleStar {
			s = segment{kind: segAny}
		}
		return &glob{base: s}, nil
	}
	if pattern[0] != '/' {
		return nil, fmt.Errorf("%w: %q is relative (start it with / or resolve it against a rule path)", errBadPattern, pattern)
	}
	g := &glob{anchored: true}
	literal, inPrefix := true, true
	var prefix strings.Builder
	for c := range strings.SplitSeq(pattern[1:], "/") {
		if pattern == "/" {
			break
		}
		switch c {
		case "":
			return nil, fmt.Errorf("%w: empty path component in %q", errBadPattern, pattern)
		case ".", "..":
			return nil, fmt.Errorf("%w: %q component in %q", errBadPattern, c, pattern)
		}
		s, err := compileSegment(c)
		if err != nil {
			return nil, err
		}
		if s.kind == segDoubleStar {
			if n := len(g.segs); n > 0 && g.segs[n-1].kind == segDoubleStar {
				continue // "**/**" is "**"
			}
		}
		if s.kind != segLiteral {
			literal, inPrefix = false, false
		}
		if inPrefix {
			prefix.WriteByte('/')
			prefix.WriteString(s.text)
		}
		g.segs = append(g.segs, s)
	}
	g.prefix = prefix.String()
	if g.prefix == "" {
		g.prefix = "/"
	}
	if literal {
		g.literal = g.prefix
	}
	return g, nil
}

// compileSegment classifies one component pattern, choosing the cheapest
// matcher that has path.Match's meaning.
func compileSegment(c string) (segment, error) {
	if c == "**" {
		return segment{kind: segDoubleStar}, nil
	}
	if strings.Contains(c, "**") {
		return segment{}, fmt.Errorf("%w: \"**\" must be a whole path component in %q", errBadPattern, c)
	}
	if negatesLikeShell(c) {
		// Shells negate a class with '!', path.Match with '^'; "[!a]"
		// would silently mean "'!' or 'a'".
		return segment{}, fmt.Errorf("%w: write [^...] to negate a character class in %q", errBadPattern, c)
	}
	if _, err := path.Match(c, ""); err != nil {
		return segment{}, fmt.Errorf("%w: syntax error in %q", errBadPattern, c)
	}
	const meta = `*?[\`
	switch {
	case !strings.ContainsAny(c, meta):
		return segment{kind: segLiteral, text: c}, nil
	case c == "*":
		return segment{kind: segAny}, nil
	case c[0] == '*' && !strings.ContainsAny(c[1:], meta):
		return segment{kind: segSuffix, text: c[1:]}, nil
	case c[len(c)-1] == '*' && !strings.ContainsAny(c[:len(c)-1], meta):
		return segment{kind: segPrefix, text: c[:len(c)-1]}, nil
	}
	return segment{kind: segGlob, text: c}, nil
}

// negatesLikeShell reports whether c has an unescaped "[!".
func negatesLikeShell(c string) bool {
	for i := 0; i+1 < len(c); i++ {
		switch {
		case c[i] == '\\':
			i++
		case c[i] == '[' && c[i+1] == '!':
			return true
		}
	}
	return false
}

// matchPath reports whether the whole clean absolute name matches.
func (g *glob) matchPath(name string) bool {
	if !g.anchored {
		return g.base.match(name[strings.LastIndexByte(name, '/')+1:])
	}
	if g.literal != "" {
		return name == g.literal
	}
	if name == "/" {
		name = ""
	}
	return matchSegs(g.segs, name, -1)
}

// matchBelow reports whether name, or one of its ancestors strictly below
// root, matches an anchored pattern. name must lie within root.
func (g *glob) matchBelow(name, root string) bool {
	if g.literal != "" {
		return len(g.literal) > len(root) && isWithin(name, g.literal)
	}
	if name == "/" {
		return false // nothing lies strictly below root
	}
	// An ancestor strictly below root is longer than root plus a slash.
	return matchSegs(g.segs, name, len(root)+1)
}

// matchSegs matches segs against the components of name, a clean
// absolute path ("" for "/"). Positions in name are component boundaries:
// 0, the index of a '/', or len(name). With minEnd < 0 the pattern must
// consume every component; otherwise it may stop at any boundary at or
// after minEnd, that is, match an ancestor of name at least minEnd bytes
// long.
//
// Names come from the file system, where anyone who can create
// directories controls them, so matching must stay cheap whatever the
// depth: the pattern is cut at each "**" into runs of single-component
// segments, the first run is anchored at the start, each middle run is
// placed at its leftmost occurrence (which leaves the most room for the
// rest, as in wildcard matching), and the last run is anchored at the end
// (or, for a prefix, placed anywhere ending at or after minEnd). That is
// O(components x segments), without backtracking.
func matchSegs(segs []segment, name string, minEnd int) bool {
	run, rest, star := cutDoubleStar(segs)
	i, ok := matchRun(run, name, 0)
	if !ok {
		return false
	}
	if !star {
		if minEnd < 0 {
			return i == len(name)
		}
		return i >= minEnd
	}
	for {
		run, rest, star = cutDoubleStar(rest)
		if star { // a middle run: leftmost occurrence
			end, found := -1, false
			for s := i; !found; s = nextBoundary(name, s) {
				end, found = matchRun(run, name, s)
				if s == len(name) {
					break
				}
			}
			if !found {
				return false
			}
			i = end
			continue
		}
		if minEnd < 0 { // the last run ends the name
			s := boundaryFromEnd(name, len(run))
			if s < i {
				return false
			}
			end, ok := matchRun(run, name, s)
			return ok && end == len(name)
		}
		for s := i; ; s = nextBoundary(name, s) {
			if end, ok := matchRun(run, name, s); ok && end >= minEnd {
				return true
			}
			if s == len(name) {
				return false
			}
		}
	}
}

// cutDoubleStar splits segs at the first "**".
func cutDoubleStar(segs []segment) (run, rest []segment, found bool) {
	for k, s := range segs {
		if s.kind == segDoubleStar {
			return segs[:k], segs[k+1:], true
		}
	}
	return segs, nil, false
}

// matchRun matches run, one segment per component, from boundary s, and
// returns the boundary after the last component matched.
func matchRun(run []segment, name string, s int) (int, bool) {
	for _, seg := range run {
		if s == len(name) {
			return 0, false
		}
		end := nextBoundary(name, s)
		if !seg.match(name[s+1 : end]) {
			return 0, false
		}
		s = end
	}
	return s, true
}

// nextBoundary returns the boundary after the component starting at s.
func nextBoundary(name string, s int) int {
	if s == len(name) {
		return s
	}
	if k := strings.IndexByte(name[s+1:], '/'); k >= 0 {
		return s + 1 + k
	}
	return len(name)
}

// boundaryFromEnd returns the boundary n components before the end of
// name, or -1 if name has fewer.
func boundaryFromEnd(name string, n int) int {
	s := len(name)
	for ; n > 0; n-- {
		k := strings.LastIndexByte(name[:s], '/')
		if k < 0 {
			return -1
		}
		s = k
	}
	return s
}

// mayMatchBelow reports whether the anchored pattern could match some path
// strictly below root. It is conservative: true when unsure. It finds
// exclude patterns that can never apply to a rule, which are errors in a
// rule and silently dropped when inherited from defaults.
func (g *glob) mayMatchBelow(root string) bool {
	if g.literal != "" {
		return g.literal != root && isWithin(g.literal, root)
	}
	return isWithin(g.prefix, root) || isWithin(root, g.prefix)
}

// resolvePattern turns a pattern as written under a rule into the form
// stored in Rule.Exclude: base-name patterns stay as they are, relative
// patterns with a slash are joined to root, and a trailing slash is dropped
// (patterns match paths, whatever their type).
func resolvePattern(pattern, root string) string {
	for len(pattern) > 1 && strings.HasSuffix(pattern, "/") {
		pattern = pattern[:len(pattern)-1]
	}
	if !strings.Contains(pattern, "/") || pattern[0] == '/' {
		return pattern
	}
	if root == "/" {
		return "/" + pattern
	}
	return root + "/" + pattern
}

// Match reports whether the clean absolute path name matches the glob
// pattern. Each component is matched with path.Match syntax, and "**" as a
// whole component matches any number of components (including none). A
// pattern without a slash matches the base name anywhere ("*.swp"); a
// pattern with a slash matches the whole path ("/etc/**/*.bak"); a relative
// pattern with a slash ("cache/*") is taken as starting at "/" here, while
// the policy compiler joins it to its rule's path.
//
// Match reports false for a malformed pattern; Parse rejects those.
// Excludes in a rule additionally cover everything below a matching path:
// see Rule.Excludes.
func Match(pattern, name string) bool {
	g, err := compileGlob(resolvePattern(pattern, "/"))
	if err != nil {
		return false
	}
	return g.matchPath(name)
}

// isWithin is fim.IsWithin, kept local so the hot path inlines.
func isWithin(path, root string) bool {
	if root == "/" {
		return len(path) > 0 && path[0] == '/'
	}
	return len(path) >= len(root) && path[:len(root)] == root && (len(path) == len(root) || path[len(root)] == '/')
}
