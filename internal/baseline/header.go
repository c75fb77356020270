package baseline

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// UnsetAUID is the login uid of a process that has none (no login session,
// such as a daemon started at boot): (uint32)-1 in the kernel.
const UnsetAUID = 4294967295

// Actor is who accepted a baseline or a change to it.
type Actor struct {
	UID       uint32 // real uid of the accepting process
	User      string // its user name, "" when unknown
	AUID      uint32 // login uid (audit uid), UnsetAUID when there is none
	LoginUser string // the login uid's user name, "" when unknown
}

// Acceptance is one acceptance of the baseline: the initial creation (ID
// 0) or a later `vigil accept` of changes. Every entry records the ID of the
// acceptance that last recorded it.
type Acceptance struct {
	ID    uint32
	Time  time.Time
	Actor Actor
	Note  string   // free text, typically the change request
	Paths []string // the paths accepted; empty for the initial baseline
}

// Header describes a baseline.
type Header struct {
	// Version is the format version; set by Open, ignored by Create.
	Version int
	// Created is when this file was written (each accept writes a new one).
	Created time.Time
	// Hostname is the host whose trees the baseline describes.
	Hostname string
	// Generation counts acceptances: incremented on every accept, so an
	// older signed baseline can't be passed off as the current one.
	Generation uint64
	// Policy is the policy the baseline was made with, as the canonical
	// YAML the caller supplies; opaque to this package.
	Policy []byte
	// Roots are the monitored trees.
	Roots []string
	// Entries is the number of entries; set by Open (the writer learns it
	// only at Commit, so it is stored at the end), ignored by Create.
	Entries uint64
	// Acceptances is the acceptance history in increasing ID order,
	// starting with acceptance 0, the initial baseline.
	Acceptances []Acceptance
}

// Acceptance returns the acceptance with the given ID.
func (h *Header) Acceptance(id uint32) (Acceptance, bool) {
	i, ok := slices.BinarySearchFunc(h.Acceptances, id, func(a Acceptance, id uint32) int {
		return int64cmp(int64(a.ID), int64(id))
	})
	if !ok {
		return Acceptance{}, false
	}
	return h.Acceptances[i], true
}

func int64cmp(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// validate checks what the format requires of a header: at least one
// acceptance, IDs strictly increasing, the first being 0.
func (h *Header) validate() error {
	if len(h.Acceptances) == 0 {
		return fmt.Errorf("no acceptance: a baseline needs acceptance 0, the initial baseline")
	}
	if h.Acceptances[0].ID != 0 {
		return fmt.Errorf("first acceptance has ID %d, want 0", h.Acceptances[0].ID)
	}
	for i := 1; i < len(h.Acceptances); i++ {
		if h.Acceptances[i].ID <= h.Acceptances[i-1].ID {
			return fmt.Errorf("acceptance IDs not strictly increasing: %d after %d", h.Acceptances[i].ID, h.Acceptances[i-1].ID)
		}
	}
	// The same limits the decoder enforces, so that a writer can never
	// produce a baseline that readers refuse.
	check := func(what string, n, max int) error {
		if n > max {
			return fmt.Errorf("%s of %d bytes is over the limit of %d", what, n, max)
		}
		return nil
	}
	errs := []error{check("hostname", len(h.Hostname), maxName), check("policy", len(h.Policy), maxPolicy)}
	for _, r := range h.Roots {
		errs = append(errs, check("root", len(r), maxName))
	}
	for _, a := range h.Acceptances {
		errs = append(errs, check("user name", len(a.Actor.User), maxName), check("login user name", len(a.Actor.LoginUser), maxName),
			check("note", len(a.Note), maxNote))
		for _, p := range a.Paths {
			errs = append(errs, check("accepted path", len(p), maxName))
		}
	}
	return errors.Join(errs...)
}

// Limits on header fields, so a decoder never trusts a length beyond them.
const (
	maxName   = 64 << 10 // hostname, user names, a path
	maxPolicy = 32 << 20
	maxNote   = 1 << 20
)

func appendTime(b []byte, t time.Time) []byte {
	b = appendVarint(b, t.Unix())
	return appendUvarint(b, uint64(t.Nanosecond()))
}

func (c *cursor) time() time.Time {
	sec := c.varint()
	nsec := c.uvarint()
	if c.err == nil && nsec >= 1e9 {
		c.err = fmt.Errorf("nanoseconds %d out of range", nsec)
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// encodeHeader returns the decoded payload of the header block.
func encodeHeader(h *Header) []byte {
	b := appendUvarint(nil, h.Generation)
	b = appendTime(b, h.Created)
	b = appendString(b, h.Hostname)
	b = appendBytes(b, h.Policy)
	b = appendUvarint(b, uint64(len(h.Roots)))
	for _, r := range h.Roots {
		b = appendString(b, r)
	}
	b = appendUvarint(b, uint64(len(h.Acceptances)))
	for _, a := range h.Acceptances {
		b = appendUvarint(b, uint64(a.ID))
		b = appendTime(b, a.Time)
		b = appendUvarint(b, uint64(a.Actor.UID))
		b = appendString(b, a.Actor.User)
		b = appendUvarint(b, uint64(a.Actor.AUID))
		b = appendString(b, a.Actor.LoginUser)
		b = appendString(b, a.Note)
		b = appendUvarint(b, uint64(len(a.Paths)))
		for _, p := range a.Paths {
			b = appendString(b, p)
		}
	}
	return b
}

// decodeHeader is the inverse of encodeHeader; Entries and Version are
// filled in by the caller.
func decodeHeader(b []byte) (Header, error) {
	c := &cursor{b: b}
	var h Header
	h.Generation = c.uvarint()
	h.Created = c.time()
	h.Hostname = c.string(maxName, "hostname")
	if p := c.bytes(maxPolicy, "policy"); len(p) > 0 {
		h.Policy = slices.Clone(p)
	}
	if n := c.count("root"); n > 0 {
		h.Roots = make([]string, n)
		for i := range h.Roots {
			h.Roots[i] = c.string(maxName, "root")
		}
	}
	n := c.count("acceptance")
	h.Acceptances = make([]Acceptance, 0, n)
	for range n {
		var a Acceptance
		a.ID = c.u32("acceptance ID")
		a.Time = c.time()
		a.Actor.UID = c.u32("uid")
		a.Actor.User = c.string(maxName, "user name")
		a.Actor.AUID = c.u32("login uid")
		a.Actor.LoginUser = c.string(maxName, "login user name")
		a.Note = c.string(maxNote, "note")
		if np := c.count("accepted path"); np > 0 {
			a.Paths = make([]string, np)
			for i := range a.Paths {
				a.Paths[i] = c.string(maxName, "accepted path")
			}
		}
		if c.err != nil {
			break
		}
		h.Acceptances = append(h.Acceptances, a)
	}
	if c.err != nil {
		return Header{}, c.err
	}
	if len(c.b) != 0 {
		return Header{}, fmt.Errorf("%d unexpected bytes after the header", len(c.b))
	}
	if err := h.validate(); err != nil {
		return Header{}, err
	}
	return h, nil
}
