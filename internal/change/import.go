package change

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxImportSize bounds a change-request import: 16 MiB holds tens of
// thousands of requests, far more than one export from a ticketing system.
const MaxImportSize = 16 << 20

// ImportRequests reads a JSON array of change requests (the Request JSON
// form; docs/change-control.md), strictly: unknown fields, trailing data
// and duplicate IDs are errors. Every request is validated and every
// problem is reported at once, each prefixed with its index and ID.
func ImportRequests(r io.Reader) ([]Request, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportSize+1))
	if err != nil {
		return nil, fmt.Errorf("import change requests: %w", err)
	}
	if len(data) > MaxImportSize {
		return nil, fmt.Errorf("import change requests: input larger than %d bytes", MaxImportSize)
	}
	var reqs []Request
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&reqs); err != nil {
		return nil, fmt.Errorf("import change requests: %w", jsonError(data, err))
	}
	if d.More() {
		return nil, fmt.Errorf("import change requests: data after the JSON array")
	}
	var errs []error
	seen := map[string]int{}
	for i := range reqs {
		if err := reqs[i].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("request[%d]: %w", i, err))
		}
		if j, dup := seen[reqs[i].ID]; dup {
			errs = append(errs, fmt.Errorf("request[%d]: %w %q: same ID as request[%d]", i, ErrInvalidRequest, reqs[i].ID, j))
		}
		seen[reqs[i].ID] = i
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("import change requests: %w", err)
	}
	return reqs, nil
}

// jsonError adds the line and column to a syntax or type error.
func jsonError(data []byte, err error) error {
	var off int64
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = max(se.Offset-1, 0) // Offset counts the offending byte
	case errors.As(err, &te):
		off = te.Offset
	default:
		return err
	}
	off = min(off, int64(len(data)))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// CheckPeople reports requests naming people the directory does not know,
// and approvals by people without an approving role. Import validates the
// requests on their own; this ties them to the configured directory.
func (c *Classifier) CheckPeople(r *Request) error {
	var errs []error
	known := func(what, id string) {
		if _, ok := c.people[id]; !ok {
			errs = append(errs, fmt.Errorf("%s %q is not in the directory", what, id))
		}
	}
	known("requester", r.Requester)
	for _, p := range r.Implementers {
		known("implementer", p)
	}
	for _, a := range r.Approvals {
		if p, ok := c.people[a.By]; !ok {
			errs = append(errs, fmt.Errorf("approver %q is not in the directory", a.By))
		} else if !c.mayApprove(p) {
			errs = append(errs, fmt.Errorf("approver %q holds no approving role", a.By))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("check people of %s: %w", r.ID, err)
	}
	return nil
}
