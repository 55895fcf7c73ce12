// Package pgstore is the PostgreSQL backend of the relay (relay.Store,
// relay.OrgKeyStore, relay.OrgDocumentStore), through pgx.
//
// Mailbox writes go through one writer goroutine per process that
// collects the appends and acknowledged deletes waiting at the moment
// and sends them as one pipelined batch, which PostgreSQL runs as one
// implicit transaction (one commit, one WAL flush, synchronous_commit
// on): Append returns only after that commit. Each batch first takes a
// transaction-scoped advisory lock, so that when several relay nodes
// share the database, envelope sequence numbers still increase in
// commit order (a reader's "after" cursor never skips a late commit).
//
// The schema is versioned (table schema_version) and migrated at Open.
// Options.Schema puts every table in one PostgreSQL schema (created if
// needed), which lets tests and several relays share a database.
package pgstore
