// Package baseline reads and writes Vigil's baseline file: every fim.Entry
// of the monitored trees, in fim.ComparePaths order, behind a header that
// records how and when the baseline was made and accepted, and signed with
// the host key.
//
// The byte layout is specified in docs/baseline-format.md. In short: a
// fixed preamble (magic, format version), one compressed header block,
// compressed blocks of prefix-compressed binary entry records, an end
// block, and a trailer that is a signed note (golang.org/x/mod/sumdb/note)
// over the SHA-256 of every byte before it. Writers write the newest format
// version; readers read every version Vigil ever wrote (version 1 lacks
// device numbers: its device entries come back with fim.Entry.Rdev nil).
//
// Both directions stream: a Writer holds one block of entries in memory and
// a Reader one block, so a baseline of millions of files costs a few
// megabytes whatever its size.
//
// Open verifies before it trusts: a first pass hashes the whole file and
// checks the signature without decoding anything beyond the block framing;
// only then are blocks decompressed and entries decoded, in a second pass
// over the same open file that hashes again and fails at the end if the
// bytes changed in between. Entries returned by Next are therefore final
// only once Next has returned io.EOF. Any damage (a changed, missing or
// added byte, a different signer) is reported as an error matching
// ErrTampered, never as an empty or partial baseline.
//
// A Writer writes to a temporary file in the baseline's directory and
// renames it over the old baseline only on Commit, after fsync, so a crash
// at any moment leaves the previous baseline intact.
package baseline
