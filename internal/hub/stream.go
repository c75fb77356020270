package hub

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/fleetca"
)

// The record stream is how agents deliver: one long-lived full-duplex
// request per agent (POST /api/v1/agent/stream) carrying record frames up
// and ack frames down (internal/fleet/wire.go). Whatever frames have
// arrived are handed to the committer as one batch without waiting for the
// previous batch's commit, and the acks go back as the group commits
// finish, so an agent pays neither a request nor a round trip per batch
// and the hub commits every agent's records together every few
// milliseconds. Per-request costs (HTTP parsing, authentication, the store
// lookup of the agent, JSON decoding) had dominated the hub's profile under
// `go run ./bench/fleet load`.
const (
	// streamIdle ends a stream that carried nothing for this long; the
	// agent opens a new one when it next has records. It bounds what a
	// vanished agent holds without the hub pinging thousands of idle ones.
	streamIdle = 5 * time.Minute
	// streamWindow bounds the batches of one stream waiting for the
	// committer: enough to keep a stream flowing through several group
	// commits, few enough that one agent cannot queue unbounded memory.
	streamWindow = 16
	// streamWriteTimeout bounds one ack write: an agent that stops
	// reading loses its stream instead of holding a goroutine forever.
	streamWriteTimeout = 30 * time.Second
	// streamReadBuffer is the reader's buffer: frames that arrived
	// together are taken as one batch from it.
	streamReadBuffer = 64 << 10
	// streamMaxAge ends a stream after an hour (or when its client
	// certificate expires, if sooner): the certificate and the agent's
	// standing are checked when a stream opens, so a busy agent that never
	// idles must reopen to be checked again.
	streamMaxAge = time.Hour
	// streamRecheck: a stream re-reads its agent's row before taking
	// records once this long has passed since the last check, so a
	// revocation (by any hub sharing the database) stops it within 30 s.
	streamRecheck = 30 * time.Second
)

// stream is one open record stream.
type stream struct {
	h       *Hub
	r       *http.Request
	rc      *http.ResponseController
	w       http.ResponseWriter
	agent   fleet.Agent
	until   time.Time // end of the stream's life
	checked time.Time // last check of the agent's row

	slots   chan struct{} // batches at the committer, at most streamWindow
	kick    chan struct{} // a result arrived (coalesced)
	final   chan struct{} // the reader is done and nothing is in flight
	stopped atomic.Bool   // the stream is ending; the reader must not read on

	mu       sync.Mutex
	hw       uint64 // last acknowledged-durable sequence number
	unsent   bool   // hw moved since the last ack frame
	refuse   error  // a commit's refusal: sent at once
	readFail error  // the reader's refusal: sent after the last ack
}

// ingestStream serves one agent's record stream until the agent closes it,
// the hub refuses a frame or a batch, it sits idle for streamIdle or
// reaches its age limit, another stream of the same agent replaces it, or
// the hub shuts down. It ends by acknowledging what it queued.
func (h *Hub) ingestStream(w http.ResponseWriter, r *http.Request) error {
	ag := r.Context().Value(keyAgent).(fleet.Agent)
	if ct := r.Header.Get("Content-Type"); ct != fleet.StreamContentType {
		err := badRequest(fmt.Sprintf("content type must be %s", fleet.StreamContentType))
		h.refuse(r.Context(), r, ag.ID, err)
		return err
	}
	rc := http.NewResponseController(w) // guard enabled full duplex
	w.Header().Set("Content-Type", fleet.StreamContentType)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil // the agent is gone; nothing to answer
	}
	s := &stream{h: h, r: r, rc: rc, w: w, agent: ag, until: time.Now().Add(streamMaxAge), checked: time.Now(),
		slots: make(chan struct{}, streamWindow), kick: make(chan struct{}, 1), final: make(chan struct{})}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && r.TLS.PeerCertificates[0].NotAfter.Before(s.until) {
		s.until = r.TLS.PeerCertificates[0].NotAfter
	}
	if !h.addStream(s) {
		return nil // the hub is shutting down
	}
	defer h.dropStream(s)
	written := make(chan struct{})
	go func() {
		defer close(written)
		s.writeAcks()
	}()
	s.read()
	// Let every batch in flight finish before the last ack, unless the
	// hub stops committing.
	for range streamWindow {
		select {
		case s.slots <- struct{}{}:
		case <-h.quit:
		}
	}
	close(s.final)
	<-written
	return nil
}

// read takes frames off the stream, validates them and queues what has
// arrived as one batch for the committer, until the stream ends.
func (s *stream) read() {
	br := bufio.NewReaderSize(s.r.Body, streamReadBuffer)
	var last uint64 // sequence number of the previous record
	n := 0          // records read, for error messages
	for {
		deadline := time.Now().Add(streamIdle)
		if s.until.Before(deadline) {
			deadline = s.until
		}
		if err := s.rc.SetReadDeadline(deadline); err != nil || s.stopped.Load() {
			return
		}
		rec, err := fleet.ReadRecordFrame(br, MaxBody)
		var recs []fleet.Record
		for err == nil {
			if verr := s.check(n, last, &rec); verr != nil {
				// What came before the bad record is stored.
				if len(recs) > 0 {
					s.submit(recs)
				}
				s.fail(verr)
				return
			}
			recs = append(recs, rec)
			last = rec.Seq
			n++
			if len(recs) == MaxBatch || !fleet.RecordFrameBuffered(br) {
				break
			}
			rec, err = fleet.ReadRecordFrame(br, MaxBody)
		}
		if err != nil {
			// Records read before a broken frame are still good.
			if len(recs) > 0 {
				s.submit(recs)
			}
			if errors.Is(err, fleet.ErrFrame) {
				s.fail(badRequest(err.Error()))
			}
			return // io.EOF: the agent ended the stream; else it is gone, idle or stopped
		}
		if !s.submit(recs) {
			return
		}
	}
}

// check validates one record: the rules of a batch, and sequence numbers
// ascending by one over the whole stream.
func (s *stream) check(n int, last uint64, rec *fleet.Record) error {
	if n > 0 && rec.Seq != last+1 {
		return badRequest(fmt.Sprintf("record %d: sequence numbers must ascend by one", n))
	}
	return validateRecord(n, rec)
}

// submit queues one batch for the committer once the stream has a free
// slot; it reports false if the stream or the hub is stopping, or the batch
// was refused.
func (s *stream) submit(recs []fleet.Record) bool {
	if time.Since(s.checked) >= streamRecheck {
		ag, err := s.h.store.Agent(s.r.Context(), s.agent.ID)
		if errors.Is(err, fleet.ErrNotFound) {
			err = fleetca.ErrForeign
		}
		if err == nil && !ag.Revoked.IsZero() {
			err = fleet.ErrRevoked
		}
		if err != nil {
			s.fail(err)
			return false
		}
		s.checked = time.Now()
	}
	// A resend overlapping the mark the stream opened with must be the
	// records the hub holds, not new ones under reused numbers.
	if err := s.h.checkReuse(s.r.Context(), s.agent, recs); err != nil {
		s.fail(err)
		return false
	}
	select {
	case s.slots <- struct{}{}:
	case <-s.h.quit:
		return false
	}
	last := recs[len(recs)-1].Seq
	req := &ingestReq{batch: fleet.Batch{AgentID: s.agent.ID, Records: recs}, done: func(res fleet.IngestResult) { s.result(res, last) }}
	select {
	case s.h.ingest <- req:
		return !s.stopped.Load()
	case <-s.h.quit:
		<-s.slots
		return false
	}
}

// result takes the outcome of one batch, whose last record is last, from
// the committer. A batch that was entirely stored before (the agent
// resending what a lost ack did not confirm) acknowledges like a stored
// one. The ack never goes past the stream's own records: a mark beyond
// them may cover records the hub has not compared with the agent's (a
// spool restored from a backup, see checkReuse).
func (s *stream) result(res fleet.IngestResult, last uint64) {
	s.mu.Lock()
	if s.refuse == nil {
		if res.Err == nil || errors.Is(res.Err, fleet.ErrReplay) {
			if hw := min(res.HighWater, last); hw > s.hw {
				s.hw, s.unsent = hw, true
			}
		} else {
			err := res.Err
			if errors.Is(err, fleet.ErrSequenceGap) {
				err = &hwError{err: err, hw: res.HighWater}
			}
			s.refuse = err
		}
	}
	s.mu.Unlock()
	<-s.slots
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// fail records a refusal found by the reader; it is sent after the acks of
// what was queued before it.
func (s *stream) fail(err error) {
	s.mu.Lock()
	if s.readFail == nil {
		s.readFail = err
	}
	s.mu.Unlock()
}

// stop makes the reader return: it is ending the stream.
func (s *stream) stop() {
	s.stopped.Store(true)
	s.rc.SetReadDeadline(time.Now())
}

// writeAcks sends an ack frame whenever results moved the high-water mark
// (one frame for all the results that arrived meanwhile), and the refusal
// that ends the stream, if any.
func (s *stream) writeAcks() {
	var buf []byte
	for {
		final := false
		select {
		case <-s.kick:
		case <-s.final:
			final = true
		}
		s.mu.Lock()
		hw, unsent, refuse := s.hw, s.unsent, s.refuse
		if final && refuse == nil {
			refuse = s.readFail
		}
		s.unsent = false
		s.mu.Unlock()
		buf = buf[:0]
		if unsent {
			buf = fleet.AppendAck(buf, hw)
		}
		if refuse != nil {
			buf = s.refusal(buf, hw, refuse)
		}
		if len(buf) > 0 && s.write(buf) != nil {
			s.stop()
			return
		}
		if refuse != nil {
			s.stop()
			return
		}
		if final {
			return
		}
	}
}

// refusal records a refused stream and appends its error frame: the same
// error body, codes and evidence record as a refused request.
func (s *stream) refusal(buf []byte, hw uint64, err error) []byte {
	status, body, internal := errorBody(err)
	if internal {
		s.h.logger.Error("record stream failed", "agent", s.agent.ID, "err", err)
	} else {
		s.h.refuse(s.r.Context(), s.r, s.agent.ID, err)
	}
	b, _ := json.Marshal(body)
	return fleet.AppendRefusal(buf, hw, status, b)
}

func (s *stream) write(b []byte) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil {
		return err
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// addStream registers s as its agent's stream, ending the one it
// replaces: an agent that reconnected has given the old one up. It
// reports false once the hub is shutting down.
func (h *Hub) addStream(s *stream) bool {
	h.streamMu.Lock()
	defer h.streamMu.Unlock()
	if h.streamsClosed {
		return false
	}
	if old := h.streams[s.agent.ID]; old != nil {
		old.stop()
	}
	h.streams[s.agent.ID] = s
	return true
}

func (h *Hub) dropStream(s *stream) {
	h.streamMu.Lock()
	defer h.streamMu.Unlock()
	if h.streams[s.agent.ID] == s {
		delete(h.streams, s.agent.ID)
	}
}

// stopStreams ends every stream at shutdown; each still acknowledges what
// it queued.
func (h *Hub) stopStreams() {
	h.streamMu.Lock()
	defer h.streamMu.Unlock()
	h.streamsClosed = true
	for _, s := range h.streams {
		s.stop()
	}
}
