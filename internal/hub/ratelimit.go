package hub

import (
	"context"
	"math"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
)

// Limits on refused requests, each with its reason (docs/fleet.md,
// "Refused requests").
const (
	// DefaultRefusalBurst refusals from one source are answered and
	// recorded one by one before it is throttled: an agent with a broken
	// certificate makes about 20 refused requests in its first minute
	// (sender and policy fetch backing off from 0.5 s, heartbeats every
	// 30 s) and about 4 a minute after, and must never be throttled; an
	// admin mistyping a token a few times must not be locked out.
	DefaultRefusalBurst = 20
	// DefaultRefusalEvery is how fast a source earns back one refusal: one
	// per 6 s (10 a minute) is more than twice what a legitimate client
	// retrying with backoff needs, and bounds what one source can write to
	// the evidence log to ten records a minute plus one summary.
	DefaultRefusalEvery = 6 * time.Second
	// refusalFlush is how often the summaries of throttled and unrecorded
	// refusals are written.
	refusalFlush = time.Minute
	// maxSources bounds the limiter's memory (about 135 bytes a source,
	// 9 MB at the cap: BenchmarkLimiterMemory); past it, new sources share
	// one bucket, so a spray from many addresses is throttled as one.
	maxSources  = 1 << 16
	overflowKey = "overflow"
)

// throttleError is a 429 with the seconds to wait.
type throttleError struct{ retryAfter int }

func (e *throttleError) Error() string { return errThrottled.Error() }
func (e *throttleError) Unwrap() error { return errThrottled }

// limiter is a token bucket per source of refused requests: a refusal
// costs a token, a source without one is answered 429 before its request
// is looked at, and a token comes back every `every`. Refusals beyond the
// tokens and the 429s are not recorded one by one but counted, and flush
// returns one summary per source.
type limiter struct {
	burst float64
	every time.Duration
	now   func() time.Time
	max   int // sources tracked before they share overflowKey's bucket

	mu  sync.Mutex
	src map[string]*bucket
}

type bucket struct {
	tokens    float64
	last      time.Time
	since     time.Time      // first refusal not recorded on its own
	throttled int            // requests answered 429
	unlogged  map[string]int // refusals not recorded on their own, by reason
}

func newLimiter(burst int, every time.Duration, now func() time.Time) *limiter {
	return &limiter{burst: float64(burst), every: every, now: now, max: maxSources, src: map[string]*bucket{}}
}

// get returns key's bucket, refilled to now. Callers hold mu.
func (l *limiter) get(key string, create bool) *bucket {
	b, ok := l.src[key]
	if !ok {
		if !create {
			return nil
		}
		if len(l.src) >= l.max {
			key = overflowKey
			if b, ok = l.src[key]; ok {
				return l.refill(b)
			}
		}
		b = &bucket{tokens: l.burst, last: l.now()}
		l.src[key] = b
		return b
	}
	return l.refill(b)
}

func (l *limiter) refill(b *bucket) *bucket {
	t := l.now()
	if d := t.Sub(b.last); d > 0 {
		b.tokens = math.Min(l.burst, b.tokens+float64(d)/float64(l.every))
		b.last = t
	}
	return b
}

// allow reports whether key may be served; if not it returns how long to
// wait and counts the request in key's summary.
func (l *limiter) allow(key string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, false)
	if b == nil && len(l.src) >= l.max {
		b = l.get(overflowKey, false)
	}
	if b == nil || b.tokens >= 1 {
		return 0, true
	}
	if b.throttled == 0 && len(b.unlogged) == 0 {
		b.since = l.now()
	}
	b.throttled++
	return time.Duration((1 - b.tokens) * float64(l.every)), false
}

// fail charges key one refusal and reports whether it is to be recorded
// on its own (true) or only counted in the next summary.
func (l *limiter) fail(key, reason string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, true)
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	if b.throttled == 0 && len(b.unlogged) == 0 {
		b.since = l.now()
	}
	if b.unlogged == nil {
		b.unlogged = map[string]int{}
	}
	b.unlogged[reason]++
	return false
}

// refusalSummary is one source's throttled and unrecorded refusals since
// the last flush.
type refusalSummary struct {
	Event     string         `json:"event"`
	Source    string         `json:"source"`
	Since     time.Time      `json:"since"`
	Until     time.Time      `json:"until"`
	Throttled int            `json:"throttled"`
	Refused   map[string]int `json:"refused,omitempty"`
}

// flush returns the summaries to record and forgets sources that are back
// to a full bucket with nothing to report.
func (l *limiter) flush() []refusalSummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var out []refusalSummary
	for k, b := range l.src {
		l.refill(b)
		if b.throttled > 0 || len(b.unlogged) > 0 {
			out = append(out, refusalSummary{Event: "refusals_throttled", Source: k, Since: b.since.UTC(), Until: now.UTC(),
				Throttled: b.throttled, Refused: b.unlogged})
			b.throttled, b.unlogged = 0, nil
			continue
		}
		if b.tokens >= l.burst {
			delete(l.src, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}

// sourceKey names who a refusal is charged to: the agent once its
// certificate was accepted (so one agent's replays do not throttle its
// neighbours behind the same NAT), the peer address otherwise.
func sourceKey(r *http.Request) string {
	if ag, ok := r.Context().Value(keyAgent).(fleet.Agent); ok {
		return "agent:" + ag.ID
	}
	return "ip:" + peerIP(r)
}

func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttled answers 429 if key has no refusal left.
func (h *Hub) throttled(key string) error {
	wait, ok := h.limit.allow(key)
	if ok {
		return nil
	}
	return &throttleError{retryAfter: int(math.Ceil(wait.Seconds()))}
}

// flushRefusals records the summaries of throttled sources.
func (h *Hub) flushRefusals(ctx context.Context) {
	for _, s := range h.limit.flush() {
		if err := h.record(ctx, evidence.KindHealth, "vigil/hub", s); err != nil {
			h.logger.Error("record refusal summary", "err", err)
		}
	}
}

// refusalFlusher writes the summaries every refusalFlush and once more
// when ctx ends.
func (h *Hub) refusalFlusher(ctx context.Context) error {
	t := time.NewTicker(refusalFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.flushRefusals(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
			h.flushRefusals(ctx)
		}
	}
}
