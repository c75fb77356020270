// Command gentree makes a deterministic tree of many small files for
// benchmarks: -files files spread over directories of -fanout entries.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
)

func main() {
	root := flag.String("root", "", "directory to create")
	files := flag.Int("files", 1000000, "number of files")
	fanout := flag.Int("fanout", 100, "files per directory and directories per level")
	flag.Parse()
	if *root == "" {
		log.Fatal("gentree: -root is required")
	}
	buf := make([]byte, 0, 512)
	for i := 0; i < *files; i++ {
		d := filepath.Join(*root, fmt.Sprintf("d%03d", i / *fanout / *fanout), fmt.Sprintf("d%03d", i / *fanout % *fanout))
		if i%*fanout == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				log.Fatal(err)
			}
		}
		// Sizes 0..1023 bytes, content unique per file.
		buf = fmt.Appendf(buf[:0], "file %d\n", i)
		for len(buf) < i%1024 {
			buf = append(buf, byte('a'+i%26))
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%07d", i)), buf, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
