package cli

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress draws one self-overwriting status line on a terminal. It stays
// silent for the first second so quick checks print nothing extra, and is
// never used when stderr is not a terminal or --json is set.
type progress struct {
	w       io.Writer
	start   time.Time
	mu      sync.Mutex
	drawn   bool
	enabled bool
	// totalEntries is what the previous baseline held: the basis of the ETA.
	totalEntries int64
}

type progressSample struct {
	Entries, Files, Bytes int64
	Elapsed               time.Duration
	// Total is the expected number of entries (the previous baseline's), 0
	// when unknown.
	Total int64
}

func newProgress(w io.Writer, enabled bool, totalEntries int64) *progress {
	return &progress{w: w, start: time.Now(), enabled: enabled, totalEntries: totalEntries}
}

func (p *progress) update(s progressSample) {
	if !p.enabled || s.Elapsed < time.Second {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	secs := s.Elapsed.Seconds()
	line := fmt.Sprintf("%d entries, %.0f files/s, %.1f MB/s", s.Entries, float64(s.Files)/secs, float64(s.Bytes)/secs/1e6)
	total := p.totalEntries
	if s.Total > 0 {
		total = s.Total
	}
	if total > 0 && s.Entries > 0 && s.Entries < total {
		rate := float64(s.Entries) / secs
		eta := time.Duration(float64(total-s.Entries) / rate * float64(time.Second)).Round(time.Second)
		line += fmt.Sprintf(", ETA %s", eta)
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	p.drawn = true
}

// done clears the line so the report starts on a clean row.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}
