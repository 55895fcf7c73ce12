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
// A second process (sottod admin) may open the same directory while the
// relay runs: SQLite serializes writers with its file lock and both sides
// wait up to busy_timeout (10 s) for it.
package sqlitestore
