package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/hub"
)

// Stream is an open record stream to the hub (POST /api/v1/agent/stream):
// Send writes record frames, Recv reads the hub's acks, each from its own
// goroutine. The agent's sender uses it, and so does bench/fleet, so that
// the load measured is the load agents make.
type Stream struct {
	pw     *io.PipeWriter
	body   io.ReadCloser
	br     *bufio.Reader
	buf    []byte
	cancel context.CancelFunc
}

// OpenStream opens a record stream with c, whose transport presents the
// agent's certificate; c must have no overall timeout (a stream lives
// for minutes). A refusal before the stream starts is an *APIError.
func OpenStream(ctx context.Context, c *http.Client, server string) (*Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"/api/v1/agent/stream", pr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open record stream: %w", err)
	}
	req.Header.Set("Content-Type", fleet.StreamContentType)
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		pw.Close()
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("open record stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer pw.Close()
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, &ae.Body) != nil {
			ae.Body.Error = http.StatusText(resp.StatusCode)
		}
		return nil, ae
	}
	return &Stream{pw: pw, body: resp.Body, br: bufio.NewReaderSize(resp.Body, 4096), cancel: cancel}, nil
}

// Send writes records (ascending by one from the stream's first) as
// frames, in one write.
func (s *Stream) Send(recs []fleet.Record) error {
	s.buf = s.buf[:0]
	for i := range recs {
		var err error
		if s.buf, err = fleet.AppendRecordFrame(s.buf, &recs[i]); err != nil {
			return err
		}
	}
	if _, err := s.pw.Write(s.buf); err != nil {
		return fmt.Errorf("send records: %w", err)
	}
	return nil
}

// CloseSend tells the hub no more records follow; it answers with the acks
// still due and ends the stream (Recv then returns io.EOF).
func (s *Stream) CloseSend() error { return s.pw.Close() }

// Recv returns the next acknowledged high-water mark. A refusal ends the
// stream: it is an *APIError whose Body.HighWater is the hub's mark.
func (s *Stream) Recv() (uint64, error) {
	rep, err := fleet.ReadReply(s.br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("read acknowledgement: %w", err)
	}
	if rep.Refusal == nil {
		return rep.HighWater, nil
	}
	ae := &APIError{Status: rep.Status, Body: hub.ErrorBody{Error: http.StatusText(rep.Status)}}
	json.Unmarshal(rep.Refusal, &ae.Body)
	if ae.Body.HighWater == nil {
		hw := rep.HighWater
		ae.Body.HighWater = &hw
	}
	return 0, ae
}

// Close ends the stream at once, whatever is in flight.
func (s *Stream) Close() error {
	s.cancel()
	s.pw.CloseWithError(errors.New("stream closed"))
	return s.body.Close()
}
