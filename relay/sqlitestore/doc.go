// Package sqlitestore is the embedded SQLite storage backend of the relay
// (modernc.org/sqlite, pure Go): directory, prekeys and the mailbox.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so a
// commit is fsynced before it returns; a send is acknowledged only after
// the commit holding its envelopes. To make that cheap, every mailbox
// write (appends and acknowledged deletes) goes through ONE writer
// goroutine that batches whatever is queued into a single transaction:
// callers wait for their batch's commit (group commit).
//
// Layout, for few bytes written per message: the envelope log is a ring
// of segment tables cleared whole once their envelopes are acknowledged
// or copied to backlog (segments.go); the segments' unacked envelopes are
// listed in memory and acks appended to per-segment ack tables
// (fresh.go); mailbox lists each device's envelopes in backlog; the
// dedupe records are appended to send_log and found through an in-memory
// index (dedupe.go). Pages are 1 KiB and the WAL is checkpointed at
// 128 MiB. Figures in docs/BENCHMARKS.md.
//
// A second process (sottod admin) may open the same directory while the
// relay runs: SQLite serializes writers with its file lock and both sides
// wait up to busy_timeout (10 s) for it.
package sqlitestore
