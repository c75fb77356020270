package hub

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleetca"
)

// Request errors the handlers return; the table below gives their status.
var (
	errBadRequest   = errors.New("malformed request")
	errTooLarge     = errors.New("request too large")
	errUnauthorized = errors.New("authentication required")
	errForbidden    = errors.New("not allowed for this role")
	errMethod       = errors.New("method not allowed")
	errThrottled    = errors.New("too many refused requests; retry later")
)

// statusEntry is one row of the error table: the status and the stable
// code clients branch on, and whether the sentinel's own text may be shown.
type statusEntry struct {
	err    error
	status int
	code   string
}

// statusTable is the one error → HTTP status mapping. Anything not in it
// is a 500 "internal error" whose details stay in the hub's log.
var statusTable = []statusEntry{
	{errBadRequest, http.StatusBadRequest, "malformed"},
	{errTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{errUnauthorized, http.StatusUnauthorized, "unauthorized"},
	{errForbidden, http.StatusForbidden, "forbidden"},
	{errMethod, http.StatusMethodNotAllowed, "method"},
	{fleet.ErrTokenInvalid, http.StatusUnauthorized, "invalid_token"},
	{fleetca.ErrNoClientCert, http.StatusUnauthorized, "no_client_certificate"},
	{fleetca.ErrExpired, http.StatusUnauthorized, "certificate_expired"},
	{fleetca.ErrForeign, http.StatusUnauthorized, "foreign_certificate"},
	{fleetca.ErrBadCSR, http.StatusBadRequest, "bad_csr"},
	{fleet.ErrNotFound, http.StatusNotFound, "not_found"},
	{fleet.ErrExists, http.StatusConflict, "exists"},
	{fleet.ErrReplay, http.StatusConflict, "replay"},
	{fleet.ErrSequenceGap, http.StatusConflict, "sequence_gap"},
	{fleet.ErrSequenceReused, http.StatusConflict, "sequence_reused"},
	{fleet.ErrRevoked, http.StatusForbidden, "revoked"},
	{errInvalidPolicy, http.StatusBadRequest, "invalid_policy"},
	{errThrottled, http.StatusTooManyRequests, "throttled"},
}

// ErrorBody is the JSON body of every error response. HighWater is set on
// ingestion refusals so an agent can resynchronise; DivergedAt on
// sequence_reused refusals (the first sequence number whose record differs
// from the hub's); Details on invalid_policy refusals (one
// file:line:col: message per problem).
type ErrorBody struct {
	Error      string   `json:"error"`
	Code       string   `json:"code"`
	HighWater  *uint64  `json:"high_water,omitempty"`
	DivergedAt *uint64  `json:"diverged_at,omitempty"`
	Details    []string `json:"details,omitempty"`
}

// classify returns the table entry for err.
func classify(err error) (statusEntry, bool) {
	for _, e := range statusTable {
		if errors.Is(err, e.err) {
			return e, true
		}
	}
	return statusEntry{status: http.StatusInternalServerError, code: "internal"}, false
}

// hwError carries a high-water mark with an ingestion refusal.
type hwError struct {
	err      error
	hw       uint64
	diverged uint64
}

func (e *hwError) Error() string { return e.err.Error() }
func (e *hwError) Unwrap() error { return e.err }

// detailError is a client error with a detail safe to show (what was wrong
// with the request, never internal state).
type detailError struct {
	err    error
	detail string
}

func (e *detailError) Error() string { return e.err.Error() + ": " + e.detail }
func (e *detailError) Unwrap() error { return e.err }

func badRequest(detail string) error { return &detailError{errBadRequest, detail} }

// writeError writes err per the table. Only sentinel texts and details
// the handlers chose to expose reach the client.
func writeError(w http.ResponseWriter, err error) (status int, internal bool) {
	status, body, internal := errorBody(err)
	var te *throttleError
	if errors.As(err, &te) {
		w.Header().Set("Retry-After", strconv.Itoa(te.retryAfter))
	}
	writeJSON(w, status, body)
	return status, internal
}

// errorBody is what a client sees of err: the status and body writeError
// sends, and whether err was internal (its details only logged).
func errorBody(err error) (status int, body ErrorBody, internal bool) {
	e, ok := classify(err)
	body = ErrorBody{Code: e.code, Error: "internal error"}
	if ok {
		body.Error = e.err.Error()
		var de *detailError
		if errors.As(err, &de) {
			body.Error = de.Error()
		}
		var hw *hwError
		if errors.As(err, &hw) {
			body.HighWater = &hw.hw
			if hw.diverged != 0 {
				body.DivergedAt = &hw.diverged
			}
		}
		var pe *policyError
		if errors.As(err, &pe) {
			body.Details = pe.lines
		}
	}
	return e.status, body, !ok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
