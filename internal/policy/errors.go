package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a policy file, at a position.
type Error struct {
	// File is the name given to Parse, or the path given to Load.
	File string
	// Line and Col are 1-based; 0 when unknown. The YAML parser does not
	// give a column for syntax errors, nor a line for a few of them.
	Line, Col int
	// Msg says what is wrong, in lower case.
	Msg string
}

// Error formats the error as "file:line:col: message", leaving out the
// parts of the position that are unknown, as compilers and editors expect.
func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every problem found in a policy file, sorted by position.
// Parse and Load return it (as *ErrorList) whenever a policy is invalid,
// so callers can show all problems at once:
//
//	var list *policy.ErrorList
//	if errors.As(err, &list) { for _, e := range list.Errors { ... } }
type ErrorList struct {
	Errors []*Error
}

// maxErrors bounds how many errors one file reports: past that point the
// input is likely not a policy at all, and more lines help nobody.
const maxErrors = 50

// Error prints one error per line.
func (l *ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (l *ErrorList) Unwrap() []error {
	out := make([]error, len(l.Errors))
	for i, e := range l.Errors {
		out[i] = e
	}
	return out
}

// add appends an error unless the list is full; the last slot says so.
func (l *ErrorList) add(e *Error) {
	switch {
	case len(l.Errors) < maxErrors-1:
		l.Errors = append(l.Errors, e)
	case len(l.Errors) == maxErrors-1:
		l.Errors = append(l.Errors, &Error{File: e.File, Line: e.Line, Col: e.Col, Msg: "too many errors"})
	}
}

// err sorts the list and returns it, or nil if it is empty.
func (l *ErrorList) err() error {
	if len(l.Errors) == 0 {
		return nil
	}
	// "too many errors" stays last whatever its position.
	n := len(l.Errors)
	if n == maxErrors {
		n--
	}
	slices.SortStableFunc(l.Errors[:n], func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return l
}
