// Package redteam mounts, against a real relay (sottod's relay.Server on
// loopback with its SQLite store) and real clients, every attack of the
// project's threat model (issues 11 and 12): a hostile relay operator who
// edits the database or rewrites frames, an outsider without an account
// who floods connections, and a contact who sends hostile text.
//
// Each attack is an entry of Registry: its name, the threat, the defence
// that stops it and a Run function. Run mounts the attack and reports
// whether it was stopped and by what. Where the defence has a real switch
// (a relay limit, the client's plaintext rule, the sealed-only rule...),
// Run also mounts it with the switch off, and the attack must then get
// through: the tests of this package check both. Where it has none (a
// signature or certificate check), the entry says how the defence was
// verified by disabling it by hand.
//
// The tests run the registry; cmd/sotto-redteam runs the same registry
// and prints the table that docs/architecture.md carries.
package redteam
