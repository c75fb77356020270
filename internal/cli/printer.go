package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/fsys"
	"github.com/vigilfim/vigil/internal/record"
)

// sink receives the results of a check in path order.
type sink interface {
	change(r *record.Change, c *fim.Change) error
	problem(p record.Problem, path string, err error) error
	finish(s *record.Summary) error
}

// jsonSink streams one JSON document. Changes are written as they are
// found so a million changes never sit in memory; the summary, which is
// only known at the end, is the document's last member (JSON objects are
// unordered, so readers see the same document either way).
type jsonSink struct {
	w        *bufio.Writer
	nChanges int
	problems []record.Problem
}

func newJSONSink(w io.Writer) *jsonSink {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(`{"changes":[`)
	return &jsonSink{w: bw}
}

func (s *jsonSink) change(r *record.Change, _ *fim.Change) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode change %q: %w", r.Path, err)
	}
	if s.nChanges > 0 {
		s.w.WriteByte(',')
	}
	s.w.WriteString("\n")
	s.nChanges++
	_, err = s.w.Write(b)
	return err
}

func (s *jsonSink) problem(p record.Problem, _ string, _ error) error {
	s.problems = append(s.problems, p)
	return nil
}

func (s *jsonSink) finish(sum *record.Summary) error {
	if s.problems == nil {
		s.problems = []record.Problem{}
	}
	pb, err := json.Marshal(s.problems)
	if err != nil {
		return err
	}
	sb, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.w, "\n],\n\"problems\":%s,\n\"summary\":%s}\n", pb, sb)
	return s.w.Flush()
}

// humanSink prints changes grouped by kind. Groups are spooled to
// temporary files so the grouping costs disk, not memory.
type humanSink struct {
	w      io.Writer
	color  bool
	groups [3]*spool // added, removed, modified
	probs  *spool
}

type spool struct {
	f *os.File
	w *bufio.Writer
	n int
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "vigil-report-*")
	if err != nil {
		return nil, fmt.Errorf("create report spool: %w", err)
	}
	os.Remove(f.Name()) // unlinked: nothing to clean up however we exit
	return &spool{f: f, w: bufio.NewWriter(f)}, nil
}

func (s *spool) copyTo(w io.Writer) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, s.f)
	return err
}

func newHumanSink(w io.Writer, color bool) (*humanSink, error) {
	h := &humanSink{w: w, color: color}
	for i := range h.groups {
		s, err := newSpool()
		if err != nil {
			return nil, err
		}
		h.groups[i] = s
	}
	s, err := newSpool()
	if err != nil {
		return nil, err
	}
	h.probs = s
	return h, nil
}

const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
)

func (h *humanSink) paint(code, s string) string {
	if !h.color {
		return s
	}
	return code + s + ansiReset
}

func (h *humanSink) change(r *record.Change, c *fim.Change) error {
	g := h.groups[c.Kind-1]
	g.n++
	w := g.w
	sev := ""
	if r.Severity != "" {
		sev = "  " + h.paint(ansiDim, "["+r.Severity+ruleSuffix(r)+"]")
	}
	switch c.Kind {
	case fim.Added:
		fmt.Fprintf(w, "  %s %s  %s%s\n", h.paint(ansiGreen, "+"), displayPath(c.Path), describe(c.New), sev)
	case fim.Removed:
		fmt.Fprintf(w, "  %s %s  %s%s\n", h.paint(ansiRed, "-"), displayPath(c.Path), describe(c.Old), sev)
	case fim.Modified:
		fmt.Fprintf(w, "  %s %s%s\n", h.paint(ansiYellow, "~"), displayPath(c.Path), sev)
		for _, a := range c.Changed.Attrs() {
			for _, line := range attrDiff(a, c.Old, c.New) {
				fmt.Fprintf(w, "      %-11s %s\n", a.String(), line)
			}
		}
	}
	return nil
}

func ruleSuffix(r *record.Change) string {
	if len(r.Tags) == 0 {
		return ""
	}
	return " " + strings.Join(r.Tags, " ")
}

func (h *humanSink) problem(_ record.Problem, path string, err error) error {
	h.probs.n++
	fmt.Fprintf(h.probs.w, "  %s %s: %v\n", h.paint(ansiRed, "!"), displayPath(path), err)
	return nil
}

func (h *humanSink) finish(s *record.Summary) error {
	bw := bufio.NewWriter(h.w)
	titles := [3]string{"Added", "Removed", "Modified"}
	for _, i := range []int{2, 0, 1} { // modified first: usually what matters
		g := h.groups[i]
		if g.n == 0 {
			continue
		}
		fmt.Fprintf(bw, "%s\n", h.paint(ansiBold, fmt.Sprintf("%s (%d)", titles[i], g.n)))
		if err := g.copyTo(bw); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		bw.WriteString("\n")
	}
	if h.probs.n > 0 {
		fmt.Fprintf(bw, "%s\n", h.paint(ansiBold, fmt.Sprintf("Could not examine (%d)", h.probs.n)))
		if err := h.probs.copyTo(bw); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		bw.WriteString("\n")
	}
	verdict := "no changes"
	if n := s.Changes(); n > 0 {
		verdict = fmt.Sprintf("%d change%s (%d modified, %d added, %d removed)", n, plural(n), s.Modified, s.Added, s.Removed)
	}
	fmt.Fprintf(bw, "%s in %d entries under %s; %d files hashed (%s) in %s",
		verdict, s.Entries, strings.Join(s.Roots, ", "), s.FilesHashed, formatBytes(s.BytesHashed),
		(time.Duration(s.DurationMS) * time.Millisecond).String())
	if s.Problems > 0 {
		fmt.Fprintf(bw, "; %s", h.paint(ansiRed, fmt.Sprintf("%d entr%s could not be examined: the check is incomplete", s.Problems, pluralY(s.Problems))))
	}
	bw.WriteString("\n")
	for _, g := range append(h.groups[:], h.probs) {
		g.f.Close()
	}
	return bw.Flush()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pluralY(n int) string {
	if n == 1 {
		return "y"
	}
	return "ies"
}

// displayPath quotes a path only when printing it raw could mislead: a
// newline or an invalid byte in a name must not forge a report line.
func displayPath(p string) string {
	if utf8.ValidString(p) && strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return p
	}
	return strconv.Quote(p)
}

func describe(e *fim.Entry) string {
	if e == nil {
		return ""
	}
	s := fmt.Sprintf("%s %s %s:%s", e.Type, e.ModeString(), userName(e.UID), groupName(e.GID))
	switch e.Type {
	case fim.TypeFile:
		s += " " + formatBytes(e.Size)
	case fim.TypeSymlink:
		s += " -> " + displayPath(e.LinkTarget)
	}
	return s
}

func attrDiff(a fim.Attr, o, n *fim.Entry) []string {
	arrow := func(x, y string) []string { return []string{x + " → " + y} }
	switch a {
	case fim.AttrType:
		return arrow(o.Type.String(), n.Type.String())
	case fim.AttrSize:
		return arrow(strconv.FormatInt(o.Size, 10), fmt.Sprintf("%d (%+d)", n.Size, n.Size-o.Size))
	case fim.AttrMode:
		return arrow(o.ModeString(), n.ModeString())
	case fim.AttrUID:
		return arrow(fmt.Sprintf("%d (%s)", o.UID, userName(o.UID)), fmt.Sprintf("%d (%s)", n.UID, userName(n.UID)))
	case fim.AttrGID:
		return arrow(fmt.Sprintf("%d (%s)", o.GID, groupName(o.GID)), fmt.Sprintf("%d (%s)", n.GID, groupName(n.GID)))
	case fim.AttrMtime:
		return arrow(fim.FormatTime(o.Mtime), fim.FormatTime(n.Mtime))
	case fim.AttrCtime:
		return arrow(fim.FormatTime(o.Ctime), fim.FormatTime(n.Ctime))
	case fim.AttrInode:
		return arrow(strconv.FormatUint(o.Inode, 10), strconv.FormatUint(n.Inode, 10))
	case fim.AttrDev:
		return arrow(strconv.FormatUint(o.Dev, 10), strconv.FormatUint(n.Dev, 10))
	case fim.AttrRdev:
		return arrow(orNone(o.RdevString()), orNone(n.RdevString()))
	case fim.AttrNlink:
		return arrow(strconv.FormatUint(o.Nlink, 10), strconv.FormatUint(n.Nlink, 10))
	case fim.AttrLinkTarget:
		return arrow(displayPath(o.LinkTarget), displayPath(n.LinkTarget))
	case fim.AttrACL:
		return arrow(orNone(o.ACL), orNone(n.ACL))
	case fim.AttrContent:
		return arrow(orNone(o.Content.String()), orNone(n.Content.String()))
	case fim.AttrXattrs:
		return xattrDiff(o.Xattrs, n.Xattrs)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func xattrDiff(o, n []fim.Xattr) []string {
	var out []string
	i, j := 0, 0
	for i < len(o) || j < len(n) {
		switch {
		case j == len(n) || (i < len(o) && o[i].Name < n[j].Name):
			out = append(out, "- "+o[i].Name+"="+xattrText(o[i]))
			i++
		case i == len(o) || n[j].Name < o[i].Name:
			out = append(out, "+ "+n[j].Name+"="+xattrText(n[j]))
			j++
		default:
			if string(o[i].Value) != string(n[j].Value) {
				out = append(out, "~ "+o[i].Name+": "+xattrText(o[i])+" → "+xattrText(n[j]))
			}
			i++
			j++
		}
	}
	return out
}

// xattrText shows an xattr value readably: capabilities decoded, text as
// text, anything else in the JSON encoding's base64 form.
func xattrText(x fim.Xattr) string {
	if x.Name == "security.capability" {
		if s, err := fsys.CapabilityText(x.Value); err == nil {
			return s
		}
	}
	return fim.EncodeXattrValue(x.Value)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
