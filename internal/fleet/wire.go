package fleet

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The record stream (POST /api/v1/agent/stream) carries binary frames in
// both directions of one long-lived, full-duplex HTTP request: the agent
// writes record frames as its spool fills, the hub answers with ack frames
// as its group commits make them durable. A fixed binary header instead of
// JSON per record keeps framing off the hub's profile; the body stays the
// JSON object the evidence log embeds. docs/fleet.md gives the layout.
//
//	record (agent → hub): 'R' | seq u64 | kind u8 | time i64 (Unix ns) | len u32 | body
//	ack    (hub → agent): 'A' | high-water u64
//	error  (hub → agent): 'E' | high-water u64 | status u16 | len u32 | JSON error body; the hub then ends the stream
//
// Integers are big-endian.
const (
	// StreamContentType names the framing in both directions.
	StreamContentType = "application/vnd.vigil.stream.v1"

	frameRecord = 'R'
	frameAck    = 'A'
	frameError  = 'E'

	recordHeaderLen = 1 + 8 + 1 + 8 + 4
	replyHeaderLen  = 1 + 8
	// maxErrorLen bounds an error frame's body: a message and a code.
	maxErrorLen = 64 << 10
)

// Kind codes on the wire.
const (
	kindChangeCode = 1
	kindHealthCode = 2
)

// ErrFrame: a frame that does not follow the layout (unknown type or kind,
// zero time, a length over the limit). The stream cannot go on after it.
var ErrFrame = errors.New("malformed stream frame")

// AppendRecordFrame appends r's frame to b.
func AppendRecordFrame(b []byte, r *Record) ([]byte, error) {
	var k byte
	switch r.Kind {
	case KindChange:
		k = kindChangeCode
	case KindHealth:
		k = kindHealthCode
	default:
		return b, fmt.Errorf("encode record %d: %w: kind %q", r.Seq, ErrFrame, r.Kind)
	}
	b = append(b, frameRecord)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = append(b, k)
	var ns int64 // 0: no time (the hub refuses it); UnixNano of the zero Time is not 0
	if !r.Time.IsZero() {
		ns = r.Time.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(ns))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Body)))
	return append(b, r.Body...), nil
}

// RecordFrameBuffered reports whether br holds at least one whole record
// frame, so that reading it cannot block: the hub takes what has arrived
// as one batch without waiting for more.
func RecordFrameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < recordHeaderLen {
		return false
	}
	h, err := br.Peek(recordHeaderLen)
	if err != nil {
		return false
	}
	return n >= recordHeaderLen+int(binary.BigEndian.Uint32(h[18:]))
}

// ReadRecordFrame reads one record frame. Bodies longer than maxBody are
// refused before being read. It returns io.EOF at a clean end of stream
// and ErrFrame (wrapped, with what was wrong) for a malformed frame.
func ReadRecordFrame(br *bufio.Reader, maxBody int) (Record, error) {
	var h [recordHeaderLen]byte
	if _, err := io.ReadFull(br, h[:1]); err != nil {
		return Record{}, err // io.EOF between frames is the clean end
	}
	if h[0] != frameRecord {
		return Record{}, fmt.Errorf("%w: frame type %#x", ErrFrame, h[0])
	}
	if _, err := io.ReadFull(br, h[1:]); err != nil {
		return Record{}, unexpected(err)
	}
	r := Record{Seq: binary.BigEndian.Uint64(h[1:])}
	switch h[9] {
	case kindChangeCode:
		r.Kind = KindChange
	case kindHealthCode:
		r.Kind = KindHealth
	default:
		return r, fmt.Errorf("%w: record %d: unknown kind %d", ErrFrame, r.Seq, h[9])
	}
	if ns := int64(binary.BigEndian.Uint64(h[10:])); ns != 0 {
		r.Time = time.Unix(0, ns).UTC()
	}
	n := binary.BigEndian.Uint32(h[18:])
	if uint64(n) > uint64(maxBody) {
		return r, fmt.Errorf("%w: record %d: body of %d bytes is over the limit of %d", ErrFrame, r.Seq, n, maxBody)
	}
	r.Body = make([]byte, n)
	if _, err := io.ReadFull(br, r.Body); err != nil {
		return r, unexpected(err)
	}
	return r, nil
}

// AppendAck appends an ack frame: every record up to hw is durable.
func AppendAck(b []byte, hw uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, frameAck), hw)
}

// AppendRefusal appends an error frame carrying the agent's high-water mark,
// the HTTP status the refusal would have as a response, and a JSON error
// body.
func AppendRefusal(b []byte, hw uint64, status int, body []byte) []byte {
	b = binary.BigEndian.AppendUint64(append(b, frameError), hw)
	b = binary.BigEndian.AppendUint16(b, uint16(status))
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// Reply is one frame from the hub: an ack of everything up to HighWater,
// or, when Refusal is set, the status and JSON error body that end the
// stream.
type Reply struct {
	HighWater uint64
	Status    int
	Refusal   []byte
}

// ReadReply reads one frame from the hub.
func ReadReply(br *bufio.Reader) (Reply, error) {
	var h [replyHeaderLen]byte
	if _, err := io.ReadFull(br, h[:1]); err != nil {
		return Reply{}, err
	}
	if h[0] != frameAck && h[0] != frameError {
		return Reply{}, fmt.Errorf("%w: frame type %#x", ErrFrame, h[0])
	}
	if _, err := io.ReadFull(br, h[1:]); err != nil {
		return Reply{}, unexpected(err)
	}
	rep := Reply{HighWater: binary.BigEndian.Uint64(h[1:])}
	if h[0] == frameAck {
		return rep, nil
	}
	var l [6]byte
	if _, err := io.ReadFull(br, l[:]); err != nil {
		return rep, unexpected(err)
	}
	rep.Status = int(binary.BigEndian.Uint16(l[:]))
	n := binary.BigEndian.Uint32(l[2:])
	if n > maxErrorLen {
		return rep, fmt.Errorf("%w: error body of %d bytes", ErrFrame, n)
	}
	rep.Refusal = make([]byte, n)
	if _, err := io.ReadFull(br, rep.Refusal); err != nil {
		return rep, unexpected(err)
	}
	return rep, nil
}

// unexpected turns an EOF inside a frame into io.ErrUnexpectedEOF: only an
// end between frames is clean.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
