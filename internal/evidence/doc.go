// Package evidence is Vigil's tamper-evident record of what happened: every
// change, review decision, change-request action, baseline acceptance,
// policy load, watcher health event and user action is appended to one
// append-only log whose leaves form an RFC 6962 Merkle tree. Signed
// checkpoints (C2SP signed notes) commit to the tree; anyone holding the
// public key can later prove that the log was not altered, reordered,
// truncated or rolled back, and an exported bundle lets an auditor check a
// range of records offline.
//
// The package is split by who uses what:
//
//   - Record, EncodeLeaf and DecodeLeaf define the canonical leaf encoding
//     (docs/evidence.md specifies it byte by byte).
//   - Log appends records through one writer goroutine that batches them and
//     returns after the batch is durably committed.
//   - Checkpointer signs checkpoints on a clock and on demand, and copies the
//     latest one out of the database (a file and witness directories), so a
//     database restored from an old copy is caught.
//   - Verify recomputes the whole tree and names the first bad index;
//     Export and VerifyBundle produce and check offline bundles.
//
// Persistence is behind small interfaces declared here (LeafStore,
// NodeReader, CheckpointStore, ...); internal/store/sqlite and
// internal/store/postgres implement them and internal/store/storetest holds
// the one conformance suite both pass. Verification is pure computation over
// what the store returns: it trusts nothing but the public key and the
// checkpoints' signatures.
package evidence
