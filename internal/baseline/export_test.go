package baseline

import "golang.org/x/mod/sumdb/note"

// CreateVersion1 writes a format-version-1 baseline, as Vigil did before
// device numbers were recorded, so that tests outside this package can
// check such baselines are still read correctly.
func CreateVersion1(path string, s note.Signer, h Header) (*Writer, error) {
	return createVersion(path, s, h, codecZstd, 1)
}
