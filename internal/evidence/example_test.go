package evidence_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

// Example shows the wiring a daemon and the CLI need: append, checkpoint,
// verify against the checkpoint file, export a bundle and check it offline.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "vigil-example-")
	defer os.RemoveAll(dir)

	// The host key (internal/signing provides it in note key format).
	skey, vkey, _ := note.GenerateKey(rand.Reader, "vigil.example/web-01")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)

	db, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	log, _ := evidence.OpenLog(ctx, db, evidence.LogOptions{})
	defer log.Close()
	cpFile := filepath.Join(dir, "evidence.checkpoint")
	cpr := evidence.NewCheckpointer(db, signer, verifier, evidence.CheckpointerOptions{File: cpFile})
	// A daemon runs go cpr.Run(ctx) to sign every 10 s while records arrive.

	for i := 0; i < 3; i++ {
		rec, _ := evidence.NewRecord(evidence.KindChange, time.Unix(1767225600+int64(i), 0), "web-01", "uid=0",
			map[string]any{"path": fmt.Sprintf("/etc/f%d", i), "verdict": "authorized"})
		if _, err := log.Append(ctx, rec); err != nil {
			fmt.Println(err)
			return
		}
	}
	cp, _ := cpr.Checkpoint(ctx) // vigil evidence checkpoint
	fmt.Println("checkpoint size", cp.Size)

	// vigil evidence verify --checkpoint-file ...
	rep, err := evidence.Verify(ctx, db, evidence.VerifyOptions{Verifier: verifier, CheckpointFile: cpFile})
	fmt.Println("verify:", rep.Size, "records,", rep.Checkpoints, "checkpoint,", err)

	// vigil evidence export --from 1 --to 3 --out FILE
	var bundle bytes.Buffer
	if _, err := evidence.Export(ctx, db, &bundle, evidence.ExportOptions{From: 1, To: 3, PublicKey: vkey}); err != nil {
		fmt.Println(err)
		return
	}
	// vigil evidence verify --bundle FILE --key VKEY (on the auditor's machine)
	_, err = evidence.VerifyBundle(&bundle, evidence.BundleOptions{TrustedKey: vkey}, func(r evidence.BundleRecord) error {
		fmt.Printf("record %d %s %s\n", r.Index, r.Record.Kind, r.Record.Body)
		return nil
	})
	fmt.Println("bundle:", err)
	// Output:
	// checkpoint size 3
	// verify: 3 records, 1 checkpoint, <nil>
	// record 1 change {"path":"/etc/f1","verdict":"authorized"}
	// record 2 change {"path":"/etc/f2","verdict":"authorized"}
	// bundle: <nil>
}
