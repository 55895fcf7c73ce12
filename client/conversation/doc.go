// Package conversation is the part of the client core that knows what a
// one-to-one conversation holds and the rules it keeps, without the network
// and without the client facade: the message record as the history stores
// it (text, replies, reactions, edits, deletions, disappearing timers, file
// and call records), the rules by which a reaction, an edit or a deletion
// for everyone changes it, where and under which key a message is stored,
// the disappearing-timer rules and the sweep of due messages, search and the
// conversation list, the batching of receipts behind a random delay, and
// the history export format that carries a conversation history to a newly
// linked device (its encoder, its size fitting and its hardened decoder).
//
// It works through the small Store interface declared here, which the
// client's encrypted store and its transactions both satisfy, and through
// callbacks (the receipt queue's wait and send). Sending, receiving and the
// relay stay with the facade (package client), which keeps thin methods
// over this package.
package conversation
