package baseline_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilfim/vigil/internal/baseline"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/signing"
)

func Example() {
	dir, err := os.MkdirTemp("", "vigil-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The host key is created on first use.
	key, err := signing.LoadOrCreate(filepath.Join(dir, "keys", "host.key"), "vigil-host1")
	if err != nil {
		log.Fatal(err)
	}

	// Write a baseline: entries in walk order, each tagged with the
	// acceptance that recorded it.
	path := filepath.Join(dir, "baseline")
	w, err := baseline.Create(path, key.Signer(), baseline.Header{
		Created:  time.Now(),
		Hostname: "host1",
		Roots:    []string{"/etc"},
		Acceptances: []baseline.Acceptance{
			{ID: 0, Time: time.Now(), Actor: baseline.Actor{User: "root", AUID: baseline.UnsetAUID}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Abort() // no-op after a successful Commit
	for _, e := range []*fim.Entry{
		{Path: "/etc", Type: fim.TypeDir, Mode: 0o755},
		{Path: "/etc/hosts", Type: fim.TypeFile, Mode: 0o644, Size: 42},
	} {
		if err := w.Add(e, 0); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}

	// Read it back, verifying with the public key only.
	if err := key.WritePublic(filepath.Join(dir, "host.pub")); err != nil {
		log.Fatal(err)
	}
	v, err := signing.LoadVerifier(filepath.Join(dir, "host.pub"))
	if err != nil {
		log.Fatal(err)
	}
	r, err := baseline.Open(path, v)
	if err != nil {
		log.Fatal(err) // errors.Is(err, baseline.ErrTampered) for a bad file
	}
	defer r.Close()
	fmt.Println("entries:", r.Header().Entries)
	for {
		e, tag, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Path, e.Type, tag)
	}
	// Output:
	// entries: 2
	// /etc dir 0
	// /etc/hosts file 0
}
