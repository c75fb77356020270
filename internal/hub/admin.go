package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/policy"
)

// errInvalidPolicy refuses an uploaded policy; the details list its
// problems as file:line:col: message.
var errInvalidPolicy = errors.New("invalid policy")

// policyError carries the problems of an uploaded policy to the client.
type policyError struct{ lines []string }

func (e *policyError) Error() string { return errInvalidPolicy.Error() }
func (e *policyError) Unwrap() error { return errInvalidPolicy }

// PolicyInfo describes a group's policy (GET and PUT
// /api/v1/groups/{group}/policy). Default is true when no policy was
// uploaded for the group and agents get the hub's --policy.
type PolicyInfo struct {
	Group     string    `json:"group"`
	Version   string    `json:"version"`
	Default   bool      `json:"default"`
	Updated   time.Time `json:"updated,omitzero"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	Policy    string    `json:"policy,omitempty"`
}

// policyFileName names an uploaded policy in error positions, so that an
// admin reads "groups/web/policy.yaml:3:7: unknown key ..." like a
// compiler error.
func policyFileName(group string) string { return "groups/" + group + "/policy.yaml" }

// groupPolicy returns the signed note and version agents of group receive:
// the uploaded policy, or the hub's default policy signed for the group.
func (h *Hub) groupPolicy(ctx context.Context, group string) (signed []byte, version string, err error) {
	p, err := h.store.GroupPolicy(ctx, group)
	if err == nil {
		return p.Signed, p.Version, nil
	}
	if !errors.Is(err, fleet.ErrNotFound) {
		return nil, "", err
	}
	version = policyVersion(h.policy)
	signed, err = h.signPolicy(group, version, h.policy)
	return signed, version, err
}

// groupPolicyVersion is the version of group's policy, without signing.
func (h *Hub) groupPolicyVersion(ctx context.Context, group string) (string, error) {
	p, err := h.store.GroupPolicy(ctx, group)
	if errors.Is(err, fleet.ErrNotFound) {
		return policyVersion(h.policy), nil
	}
	return p.Version, err
}

// signPolicy signs the policy document agents verify before parsing.
func (h *Hub) signPolicy(group, version string, src []byte) ([]byte, error) {
	text, err := json.Marshal(PolicyDocument{Group: group, Version: version, Policy: string(src)})
	if err != nil {
		return nil, fmt.Errorf("encode policy: %w", err)
	}
	signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, h.key.Signer())
	if err != nil {
		return nil, fmt.Errorf("sign policy: %w", err)
	}
	return signed, nil
}

func groupParam(r *http.Request) (string, error) {
	g := r.PathValue("group")
	if !fleet.ValidGroup(g) {
		return "", badRequest("group names are 1-64 characters of a-z, 0-9, '.', '_', '-'")
	}
	return g, nil
}

// putPolicy validates an uploaded policy with the same parser the agent
// uses, signs it and stores it for the group: agents of the group pick it
// up at their next heartbeat.
func (h *Hub) putPolicy(w http.ResponseWriter, r *http.Request) error {
	u := r.Context().Value(keyUser).(fleet.User)
	group, err := groupParam(r)
	if err != nil {
		return err
	}
	src, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return badRequest("read body")
	}
	if _, err := policy.Parse(policyFileName(group), src); err != nil {
		pe := &policyError{}
		var list *policy.ErrorList
		if errors.As(err, &list) {
			for _, e := range list.Errors {
				pe.lines = append(pe.lines, e.Error())
			}
		} else {
			pe.lines = []string{err.Error()}
		}
		h.refuse(r.Context(), r, u.Name, pe)
		return pe
	}
	old, err := h.store.GroupPolicy(r.Context(), group)
	oldVersion := ""
	if err == nil {
		oldVersion = old.Version
	} else if !errors.Is(err, fleet.ErrNotFound) {
		return err
	}
	version := policyVersion(src)
	signed, err := h.signPolicy(group, version, src)
	if err != nil {
		return err
	}
	p := fleet.Policy{Group: group, Version: version, Source: src, Signed: signed, Updated: h.opts.Now().UTC(), UpdatedBy: u.Name}
	// Evidence first: an upload the evidence log cannot hold must not
	// reach agents.
	if err := h.record(r.Context(), evidence.KindUserAction, u.Name, map[string]string{
		"action": "put_policy", "group": group, "version": version, "previous_version": oldVersion}); err != nil {
		return err
	}
	if err := h.store.PutPolicy(r.Context(), p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, policyInfo(p, false))
	return nil
}

func policyInfo(p fleet.Policy, withSource bool) PolicyInfo {
	pi := PolicyInfo{Group: p.Group, Version: p.Version, Updated: p.Updated, UpdatedBy: p.UpdatedBy}
	if withSource {
		pi.Policy = string(p.Source)
	}
	return pi
}

func (h *Hub) getPolicy(w http.ResponseWriter, r *http.Request) error {
	group, err := groupParam(r)
	if err != nil {
		return err
	}
	p, err := h.store.GroupPolicy(r.Context(), group)
	if errors.Is(err, fleet.ErrNotFound) {
		writeJSON(w, http.StatusOK, PolicyInfo{Group: group, Version: policyVersion(h.policy), Default: true, Policy: string(h.policy)})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, policyInfo(p, true))
	return nil
}

// GroupRequest is the body of PUT /api/v1/hosts/{id}/group.
type GroupRequest struct {
	Group string `json:"group"`
}

func (h *Hub) setGroup(w http.ResponseWriter, r *http.Request) error {
	u := r.Context().Value(keyUser).(fleet.User)
	var req GroupRequest
	if err := decode(r, &req); err != nil {
		h.refuse(r.Context(), r, u.Name, err)
		return err
	}
	if !fleet.ValidGroup(req.Group) {
		err := badRequest("group names are 1-64 characters of a-z, 0-9, '.', '_', '-'")
		h.refuse(r.Context(), r, u.Name, err)
		return err
	}
	id := r.PathValue("id")
	ag, err := h.store.Agent(r.Context(), id)
	if err != nil {
		return err
	}
	if err := h.recordHostActor(r.Context(), evidence.KindUserAction, ag.Host, u.Name, map[string]string{
		"action": "set_group", "agent": id, "from": ag.Group, "to": req.Group}); err != nil {
		return err
	}
	if _, err := h.store.SetGroup(r.Context(), id, req.Group); err != nil {
		return err
	}
	ag.Group = req.Group
	writeJSON(w, http.StatusOK, ag)
	return nil
}

// revoke bars an agent for good: every later request with any of its
// certificates is refused (the agent middleware reads the agent row on
// every request), on every hub sharing the database and after restarts.
// The host comes back only through a new enrolment token.
func (h *Hub) revoke(w http.ResponseWriter, r *http.Request) error {
	u := r.Context().Value(keyUser).(fleet.User)
	id := r.PathValue("id")
	ag, err := h.store.Agent(r.Context(), id)
	if err != nil {
		return err
	}
	if !ag.Revoked.IsZero() {
		writeJSON(w, http.StatusOK, ag)
		return nil
	}
	// Recorded before it takes effect, like every admin action here: no
	// revocation happens without its record.
	if err := h.recordHostActor(r.Context(), evidence.KindUserAction, ag.Host, u.Name, map[string]string{
		"action": "revoke", "agent": id, "cert_serial": ag.CertSerial, "group": ag.Group}); err != nil {
		return err
	}
	ag, _, err = h.store.Revoke(r.Context(), id, h.opts.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ag)
	return nil
}
