package change

import (
	"fmt"
	"time"
)

// ReviewState is where a review item stands.
type ReviewState string

// Review states: an item opens for every unauthorized change and is closed
// by a reviewer accepting it (the change is legitimate after all, and the
// baseline may take it) or rejecting it (it must be undone or
// investigated).
const (
	ReviewOpen     ReviewState = "open"
	ReviewAccepted ReviewState = "accepted"
	ReviewRejected ReviewState = "rejected"
)

// ReviewItem is one unauthorized change waiting for a person's decision.
type ReviewItem struct {
	ID string `json:"id"`
	// ChangeID is the store's identifier of the change record.
	ChangeID string `json:"change_id"`
	Host     string `json:"host"`
	Path     string `json:"path"`
	// Actor is the person the change was attributed to ("" if unknown);
	// ActorAccount the account name from who-data, kept for changes no
	// person maps to.
	Actor        string      `json:"actor,omitempty"`
	ActorAccount string      `json:"actor_account,omitempty"`
	Verdict      Verdict     `json:"verdict"`
	State        ReviewState `json:"state"`
	Opened       time.Time   `json:"opened"`
	Reviewer     string      `json:"reviewer,omitempty"`
	Note         string      `json:"note,omitempty"`
	Decided      *time.Time  `json:"decided,omitempty"`
}

// SelfReviewError refuses a review decision by the person who made the
// change: nobody signs off their own unauthorized change.
type SelfReviewError struct {
	Reviewer string
	Item     string
}

func (e *SelfReviewError) Error() string {
	return fmt.Sprintf("%s cannot review %s: %s made the change", e.Reviewer, e.Item, e.Reviewer)
}

// NewReviewItem opens a review item for a classified change.
func NewReviewItem(id, changeID, host, path string, v Verdict, actorAccount string, at time.Time) ReviewItem {
	return ReviewItem{ID: id, ChangeID: changeID, Host: host, Path: path, Actor: v.Person, ActorAccount: actorAccount,
		Verdict: v, State: ReviewOpen, Opened: at}
}

// Accept closes the item as a legitimate change. The person who made the
// change may not accept it (*SelfReviewError); a decided item can't be
// decided again (*TransitionError).
func (it ReviewItem) Accept(reviewer, note string, at time.Time) (ReviewItem, error) {
	return it.decide(ReviewAccepted, "accept", reviewer, note, at)
}

// Reject closes the item as a change to be undone or investigated. The
// same person rule applies as for Accept: a decision on one's own change
// is not a review.
func (it ReviewItem) Reject(reviewer, note string, at time.Time) (ReviewItem, error) {
	return it.decide(ReviewRejected, "reject", reviewer, note, at)
}

func (it ReviewItem) decide(to ReviewState, op, reviewer, note string, at time.Time) (ReviewItem, error) {
	if it.State != ReviewOpen {
		return ReviewItem{}, &TransitionError{ID: "review " + it.ID, Op: op, From: string(it.State)}
	}
	if err := checkText("reviewer", reviewer, maxIDLen); err != nil {
		return ReviewItem{}, fmt.Errorf("%s review %s: %w", op, it.ID, err)
	}
	if reviewer == it.Actor || reviewer == it.ActorAccount {
		return ReviewItem{}, &SelfReviewError{Reviewer: reviewer, Item: it.ID}
	}
	it.State, it.Reviewer, it.Note, it.Decided = to, reviewer, note, &at
	return it, nil
}
