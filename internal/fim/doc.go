// Package fim holds Vigil's domain types: the attributes recorded for one
// file system entry, the fingerprint that decides whether content must be
// hashed again, and the pure comparison that turns two entries into a change.
//
// Nothing here touches the file system, the clock or goroutines: scanners,
// baselines, watchers and the change-control classifier all exchange these
// values, so they must stay cheap to copy and trivial to test.
package fim
