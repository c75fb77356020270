package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/change/manifest"
	"github.com/vigilfim/vigil/internal/store"
)

// casRetries bounds the read-modify-write retries of an update that lost
// a race: each retry re-reads and re-checks, so a second attempt only
// fails if the object keeps changing.
const casRetries = 3

// OpenRequest opens a new change request with the caller as requester.
func (c *Controller) OpenRequest(ctx context.Context, r change.Request) (change.Request, error) {
	p, err := c.Caller()
	if err != nil {
		return r, err
	}
	r.Requester = p.ID
	r, err = change.Open(r, c.now().UTC())
	if err != nil {
		return r, err
	}
	if err := c.cl.CheckPeople(&r); err != nil {
		return r, err
	}
	if err := c.st.CreateRequest(ctx, r); err != nil {
		if errors.Is(err, store.ErrExists) {
			return r, fmt.Errorf("open %s: a change request with this ID exists already", r.ID)
		}
		return r, err
	}
	return r, nil
}

// updateRequest applies op to the stored request, retrying when another
// process updated it meanwhile.
func (c *Controller) updateRequest(ctx context.Context, id string, op func(change.Request) (change.Request, error)) (change.Request, error) {
	for i := 0; ; i++ {
		r, err := c.st.Request(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return r, fmt.Errorf("no change request %s", id)
		}
		if err != nil {
			return r, err
		}
		next, err := op(r)
		if err != nil {
			return r, err
		}
		err = c.st.UpdateRequest(ctx, r, next)
		if err == nil || !errors.Is(err, store.ErrConflict) || i+1 >= casRetries {
			return next, err
		}
	}
}

// ApproveRequest records the caller's approval of a request. The requester and
// the implementers are refused (*change.SelfApprovalError), as is anyone
// without an approving role (*change.NotApproverError).
func (c *Controller) ApproveRequest(ctx context.Context, id, note string) (change.Request, error) {
	p, err := c.Caller()
	if err != nil {
		return change.Request{}, err
	}
	return c.updateRequest(ctx, id, func(r change.Request) (change.Request, error) {
		return c.cl.Approve(r, p.ID, c.now().UTC(), note)
	})
}

// RejectRequest records the caller's rejection of a request; like an approval,
// it needs an approving role, but the requester may withdraw their own.
func (c *Controller) RejectRequest(ctx context.Context, id, note string) (change.Request, error) {
	p, err := c.Caller()
	if err != nil {
		return change.Request{}, err
	}
	return c.updateRequest(ctx, id, func(r change.Request) (change.Request, error) {
		if p.ID != r.Requester && !c.mayApprove(p) {
			return r, fmt.Errorf("%s cannot reject %s: only its requester or someone whose role allows approving can", p.ID, r.ID)
		}
		return r.Reject(p.ID, c.now().UTC(), note)
	})
}

// CloseRequest closes a request: changes made after now are not authorized by
// it. The requester, an implementer or an approver may close it.
func (c *Controller) CloseRequest(ctx context.Context, id string) (change.Request, error) {
	p, err := c.Caller()
	if err != nil {
		return change.Request{}, err
	}
	return c.updateRequest(ctx, id, func(r change.Request) (change.Request, error) {
		if p.ID != r.Requester && !slices.Contains(r.Implementers, p.ID) && !c.mayApprove(p) {
			return r, fmt.Errorf("%s cannot close %s: only its requester, an implementer or an approver can", p.ID, r.ID)
		}
		return r.Close(c.now().UTC())
	})
}

func (c *Controller) mayApprove(p *change.Person) bool {
	for _, r := range p.Roles {
		if c.approvers[r] {
			return true
		}
	}
	return false
}

// Import stores the requests of a JSON export (change.ImportRequests),
// replacing requests with the same IDs: the ticketing system is the source
// of truth. The caller must be in the directory; the requests must name
// only people it knows.
func (c *Controller) Import(ctx context.Context, r io.Reader) ([]change.Request, error) {
	if _, err := c.Caller(); err != nil {
		return nil, err
	}
	rs, err := change.ImportRequests(r)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i := range rs {
		if err := c.cl.CheckPeople(&rs[i]); err != nil {
			errs = append(errs, fmt.Errorf("request[%d] %q: %w", i, rs[i].ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, q := range rs {
		if err := c.st.PutRequest(ctx, q); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// SubmitManifest verifies a signed manifest against the policy's pipeline
// keys and stores it as received. A manifest no registered key signed is
// refused (*manifest.UnknownSignerError), as is every other failure.
func (c *Controller) SubmitManifest(ctx context.Context, signed []byte) (*manifest.Verified, error) {
	v, err := c.cl.Keyring().Open(signed)
	if err != nil {
		return nil, fmt.Errorf("reject manifest: %w", err)
	}
	m := v.Manifest
	if err := c.st.PutManifest(ctx, store.Manifest{Pipeline: m.Pipeline, Run: m.Run, Created: m.Created,
		Expires: m.Expires, Signed: signed}); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("submit manifest %s/%s: another manifest for this run was submitted already", m.Pipeline, m.Run)
		}
		return nil, err
	}
	return v, nil
}

// ErrNoteRequired refuses a review decision without a note: the note is
// the record of why an unauthorized change was let through or not.
var ErrNoteRequired = errors.New("a review decision needs a note saying why (--note)")

// Decide accepts or rejects a review item as the caller. The person who
// made the change is refused (*change.SelfReviewError). An accepted
// change is taken into the baseline through acc (nil: not at all) with a
// note naming the review.
func (c *Controller) Decide(ctx context.Context, id string, accept bool, note string, acc Acceptor) (change.ReviewItem, error) {
	if note == "" {
		return change.ReviewItem{}, ErrNoteRequired
	}
	p, err := c.Caller()
	if err != nil {
		return change.ReviewItem{}, err
	}
	var next change.ReviewItem
	for i := 0; ; i++ {
		it, err := c.st.Review(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return it, fmt.Errorf("no review item %s", id)
		}
		if err != nil {
			return it, err
		}
		if accept {
			next, err = it.Accept(p.ID, note, c.now().UTC())
		} else {
			next, err = it.Reject(p.ID, note, c.now().UTC())
		}
		if err != nil {
			return it, err
		}
		err = c.st.UpdateReview(ctx, it, next)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) || i+1 >= casRetries {
			return it, err
		}
	}
	if accept && acc != nil {
		by := ProcessActor()
		if err := acc.Accept(ctx, []string{next.Path}, by, fmt.Sprintf("review %s accepted by %s: %s", next.ID, p.ID, note)); err != nil {
			return next, fmt.Errorf("review %s is accepted, but taking %s into the baseline failed (run 'vigil accept'): %w", next.ID, next.Path, err)
		}
	}
	return next, nil
}
