package fim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The JSON change record is documented in docs/json.md. Linux names and
// link targets are byte strings; JSON strings are Unicode. A name that is
// not valid UTF-8 is written twice: readably in "path" (invalid bytes
// replaced by U+FFFD) and exactly in "path_b64", which readers must prefer.
// Extended attribute values are binary too: a value that is printable
// UTF-8 is written as is, any other value as "base64:" followed by its
// standard base64 encoding.

const b64Prefix = "base64:"

// EntryJSON is the JSON form of an Entry.
type EntryJSON struct {
	Path          string            `json:"path,omitempty"`
	PathB64       string            `json:"path_b64,omitempty"`
	Type          string            `json:"type"`
	Size          int64             `json:"size"`
	Mode          string            `json:"mode"`
	UID           uint32            `json:"uid"`
	GID           uint32            `json:"gid"`
	Mtime         string            `json:"mtime"`
	Ctime         string            `json:"ctime"`
	Inode         uint64            `json:"inode"`
	Nlink         uint64            `json:"nlink"`
	Dev           uint64            `json:"dev"`
	Rdev          string            `json:"rdev,omitempty"`
	LinkTarget    string            `json:"link_target,omitempty"`
	LinkTargetB64 string            `json:"link_target_b64,omitempty"`
	Xattrs        map[string]string `json:"xattrs,omitempty"`
	ACL           string            `json:"acl,omitempty"`
	Content       string            `json:"content,omitempty"`
}

// ChangeJSON is the JSON form of a Change.
type ChangeJSON struct {
	Path    string     `json:"path"`
	PathB64 string     `json:"path_b64,omitempty"`
	Type    string     `json:"type"`
	Changed []string   `json:"changed,omitempty"`
	Old     *EntryJSON `json:"old,omitempty"`
	New     *EntryJSON `json:"new,omitempty"`
}

// EncodeName returns the readable and the exact form of a byte string: the
// exact form is empty when the name is valid UTF-8.
func EncodeName(s string) (readable, exact string) {
	if utf8.ValidString(s) {
		return s, ""
	}
	return strings.ToValidUTF8(s, "\uFFFD"), base64.StdEncoding.EncodeToString([]byte(s))
}

// DecodeName is the inverse of EncodeName.
func DecodeName(readable, exact string) (string, error) {
	if exact == "" {
		return readable, nil
	}
	b, err := base64.StdEncoding.DecodeString(exact)
	if err != nil {
		return "", fmt.Errorf("decode name %q: %w", readable, err)
	}
	return string(b), nil
}

// EncodeXattrValue returns the JSON string form of an xattr value.
func EncodeXattrValue(v []byte) string {
	s := string(v)
	if utf8.ValidString(s) && !strings.HasPrefix(s, b64Prefix) && strings.IndexFunc(s, notPrintable) < 0 {
		return s
	}
	return b64Prefix + base64.StdEncoding.EncodeToString(v)
}

func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

// DecodeXattrValue is the inverse of EncodeXattrValue.
func DecodeXattrValue(s string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(s, b64Prefix); ok {
		return base64.StdEncoding.DecodeString(rest)
	}
	return []byte(s), nil
}

// FormatTime formats nanoseconds since the epoch as RFC 3339 in UTC.
func FormatTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// JSON returns the JSON form of the entry; the path is included only when
// withPath is set, since a change record carries it once at the top.
func (e *Entry) JSON(withPath bool) *EntryJSON {
	j := &EntryJSON{
		Type:    e.Type.String(),
		Size:    e.Size,
		Mode:    e.ModeString(),
		UID:     e.UID,
		GID:     e.GID,
		Mtime:   FormatTime(e.Mtime),
		Ctime:   FormatTime(e.Ctime),
		Inode:   e.Inode,
		Nlink:   e.Nlink,
		Dev:     e.Dev,
		Rdev:    e.RdevString(),
		ACL:     e.ACL,
		Content: e.Content.String(),
	}
	if withPath {
		j.Path, j.PathB64 = EncodeName(e.Path)
	}
	j.LinkTarget, j.LinkTargetB64 = EncodeName(e.LinkTarget)
	if len(e.Xattrs) > 0 {
		j.Xattrs = make(map[string]string, len(e.Xattrs))
		for _, x := range e.Xattrs {
			j.Xattrs[x.Name] = EncodeXattrValue(x.Value)
		}
	}
	return j
}

// Entry decodes the JSON form; path is used when the form has none.
func (j *EntryJSON) Entry(path string) (*Entry, error) {
	e := &Entry{Path: path, Size: j.Size, UID: j.UID, GID: j.GID, Inode: j.Inode, Nlink: j.Nlink, Dev: j.Dev, ACL: j.ACL}
	var err error
	if j.Path != "" || j.PathB64 != "" {
		if e.Path, err = DecodeName(j.Path, j.PathB64); err != nil {
			return nil, err
		}
	}
	if e.Type, err = ParseFileType(j.Type); err != nil {
		return nil, err
	}
	if j.Rdev != "" {
		if !e.Type.IsDevice() {
			return nil, fmt.Errorf("rdev %q on a %s: only devices have one", j.Rdev, e.Type)
		}
		d, err := ParseDevNumber(j.Rdev)
		if err != nil {
			return nil, err
		}
		e.Rdev = &d
	}
	var mode uint64
	if _, err := fmt.Sscanf(j.Mode, "%o", &mode); err != nil || mode > 0o7777 {
		return nil, fmt.Errorf("mode %q: want up to four octal digits", j.Mode)
	}
	e.Mode = uint32(mode)
	if e.Mtime, err = parseTime(j.Mtime); err != nil {
		return nil, err
	}
	if e.Ctime, err = parseTime(j.Ctime); err != nil {
		return nil, err
	}
	if e.LinkTarget, err = DecodeName(j.LinkTarget, j.LinkTargetB64); err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(j.Xattrs)) {
		v, err := DecodeXattrValue(j.Xattrs[name])
		if err != nil {
			return nil, fmt.Errorf("xattr %s: %w", name, err)
		}
		e.Xattrs = append(e.Xattrs, Xattr{Name: name, Value: v})
	}
	if j.Content != "" {
		if e.Content, err = ParseDigest(j.Content); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func parseTime(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", s, err)
	}
	return t.UnixNano(), nil
}

// JSON returns the JSON form of the change.
func (c *Change) JSON() *ChangeJSON {
	j := &ChangeJSON{Type: c.Kind.String()}
	j.Path, j.PathB64 = EncodeName(c.Path)
	if c.Kind == Modified {
		j.Changed = c.Changed.Names()
	}
	if c.Old != nil {
		j.Old = c.Old.JSON(false)
	}
	if c.New != nil {
		j.New = c.New.JSON(false)
	}
	return j
}

// Change decodes the JSON form of a change.
func (j *ChangeJSON) Change() (*Change, error) {
	path, err := DecodeName(j.Path, j.PathB64)
	if err != nil {
		return nil, err
	}
	c := &Change{Path: path}
	var ok bool
	if c.Kind, ok = ParseKind(j.Type); !ok {
		return nil, fmt.Errorf("change %q: unknown type %q", j.Path, j.Type)
	}
	for _, n := range j.Changed {
		a, err := ParseAttr(n)
		if err != nil {
			return nil, fmt.Errorf("change %q: %w", j.Path, err)
		}
		c.Changed = c.Changed.With(a)
	}
	if j.Old != nil {
		if c.Old, err = j.Old.Entry(path); err != nil {
			return nil, fmt.Errorf("change %q: old: %w", j.Path, err)
		}
	}
	if j.New != nil {
		if c.New, err = j.New.Entry(path); err != nil {
			return nil, fmt.Errorf("change %q: new: %w", j.Path, err)
		}
	}
	return c, nil
}

// MarshalJSON implements json.Marshaler.
func (c Change) MarshalJSON() ([]byte, error) { return json.Marshal(c.JSON()) }
