package fleet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func TestRecordFrameRoundTrip(t *testing.T) {
	recs := []Record{
		{Seq: 1, Kind: KindChange, Time: time.Unix(1700000000, 123456789).UTC(), Body: []byte(`{"path":"/etc/x"}`)},
		{Seq: 1 << 62, Kind: KindHealth, Time: time.Unix(0, 1).UTC(), Body: []byte(`{}`)},
	}
	var b []byte
	for i := range recs {
		var err error
		if b, err = AppendRecordFrame(b, &recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(bytes.NewReader(b))
	for _, want := range recs {
		if !RecordFrameBuffered(br) && br.Buffered() > 0 {
			t.Fatal("whole frame buffered but not reported")
		}
		got, err := ReadRecordFrame(br, 1<<20)
		if err != nil || got.Seq != want.Seq || got.Kind != want.Kind || !got.Time.Equal(want.Time) || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("read %+v, %v; want %+v", got, err, want)
		}
	}
	if _, err := ReadRecordFrame(br, 1<<20); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	if _, err := AppendRecordFrame(nil, &Record{Kind: "other"}); !errors.Is(err, ErrFrame) {
		t.Fatalf("unknown kind encoded: %v", err)
	}
	// Cut short, over the limit, unknown type or kind.
	for name, in := range map[string][]byte{
		"truncated":    b[:len(b)-1],
		"over limit":   b,
		"unknown type": append([]byte{'X'}, b[1:]...),
		"unknown kind": append(append(append([]byte{}, b[:9]...), 9), b[10:]...),
	} {
		br := bufio.NewReader(bytes.NewReader(in))
		var err error
		for err == nil {
			_, err = ReadRecordFrame(br, map[bool]int{true: 4, false: 1 << 20}[name == "over limit"])
		}
		if err == io.EOF {
			t.Errorf("%s: read to a clean end", name)
		}
	}
	// Replies.
	r := AppendRefusal(AppendAck(nil, 7), 7, 409, []byte(`{"code":"sequence_gap"}`))
	br = bufio.NewReader(bytes.NewReader(r))
	if rep, err := ReadReply(br); err != nil || rep.HighWater != 7 || rep.Refusal != nil {
		t.Fatalf("ack: %+v %v", rep, err)
	}
	if rep, err := ReadReply(br); err != nil || rep.HighWater != 7 || rep.Status != 409 || string(rep.Refusal) != `{"code":"sequence_gap"}` {
		t.Fatalf("refusal: %+v %v", rep, err)
	}
}

// FuzzReadRecordFrame: arbitrary input never panics, never yields a body
// over the limit, and what decodes re-encodes to the same bytes.
func FuzzReadRecordFrame(f *testing.F) {
	b, _ := AppendRecordFrame(nil, &Record{Seq: 3, Kind: KindChange, Time: time.Unix(5, 0), Body: []byte(`{"a":1}`)})
	f.Add(b)
	f.Add(append(b, b...))
	f.Add([]byte{'R', 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		var out []byte
		for {
			r, err := ReadRecordFrame(br, 64)
			if err != nil {
				break
			}
			if len(r.Body) > 64 {
				t.Fatalf("body of %d bytes over the limit", len(r.Body))
			}
			if out, err = AppendRecordFrame(out, &r); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.HasPrefix(in, out) {
			t.Fatalf("re-encoded %x is not a prefix of %x", out, in)
		}
	})
}
