// Package store documents how Vigil persists state; the code is in its
// subpackages, one per database, which share a contract rather than code:
//
//   - sqlite: the embedded default (modernc.org/sqlite, WAL), one file.
//   - postgres: for hubs that share one database (github.com/jackc/pgx/v5).
//   - storetest: the conformance suite both must pass.
//
// Each backend opens from a path or DSN and applies its embedded migrations
// (migrations/NNNN_name.sql, applied in order, each in its own transaction,
// recorded in the schema_version table). To add tables, add the next
// numbered file to BOTH backends and extend storetest; never edit a
// migration that has shipped.
//
// The interfaces a backend implements are declared by the packages that use
// them (evidence.Store, ...), so a backend's concrete type grows one small
// file of methods per consumer.
package store
