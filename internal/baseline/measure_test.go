package baseline

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
)

// TestCompressionChoice prints the size and speed of the candidate block
// codecs on synthetic entries; it is the measurement behind the choice of
// zstd at the default level with 256 KiB blocks (docs/baseline-format.md).
// Run: VIGIL_MEASURE=1 go test -run TestCompressionChoice -v ./internal/baseline
func TestCompressionChoice(t *testing.T) {
	if os.Getenv("VIGIL_MEASURE") == "" {
		t.Skip("measurement only: set VIGIL_MEASURE=1")
	}
	const n = 200000
	for _, target := range []int{64 << 10, 256 << 10, 1 << 20} {
		// Encode raw blocks as the writer does.
		var blocks [][]byte
		g := newSynth(n, 42)
		var raw []byte
		var d delta
		total := 0
		for e := g.next(); e != nil; e = g.next() {
			raw = appendEntry(raw, &d, e, 0, Version)
			if len(raw) >= target {
				blocks = append(blocks, raw)
				total += len(raw)
				raw, d = nil, delta{}
			}
		}
		blocks = append(blocks, raw)
		total += len(raw)
		t.Logf("block %4d KiB: raw %.1f bytes/entry", target>>10, float64(total)/n)
		for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression} {
			enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(lvl), zstd.WithWindowSize(1<<20))
			start := time.Now()
			size := 0
			var out []byte
			for _, b := range blocks {
				out = enc.EncodeAll(b, out[:0])
				size += len(out)
			}
			el := time.Since(start)
			dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
			var comp [][]byte
			for _, b := range blocks {
				comp = append(comp, enc.EncodeAll(b, nil))
			}
			start = time.Now()
			for _, c := range comp {
				out, _ = dec.DecodeAll(c, out[:0])
			}
			t.Logf("  zstd %-8s %.1f bytes/entry, compress %v, decompress %v", lvl, float64(size)/n, el, time.Since(start))
			enc.Close()
			dec.Close()
		}
		for _, lvl := range []int{flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
			var buf bytes.Buffer
			fw, _ := flate.NewWriter(&buf, lvl)
			start := time.Now()
			size := 0
			for _, b := range blocks {
				buf.Reset()
				fw.Reset(&buf)
				fw.Write(b)
				fw.Close()
				size += buf.Len()
			}
			t.Logf("  flate level %d: %.1f bytes/entry, compress %v", lvl, float64(size)/n, time.Since(start))
		}
	}
}
