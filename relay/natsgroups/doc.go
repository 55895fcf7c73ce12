// Package natsgroups is the relay's group storage (relay.GroupStore, the
// MLS Delivery Service of DESIGN §5) on NATS JetStream, for a relay whose
// mailbox is JetStream (relay/natsmailbox): the same contract and the
// same conformance suite (relay/storetest.RunGroups) as the SQL stores.
//
// Layout: one file-backed key-value bucket holds, per group, its head
// (g.<group>: epoch, next sequence number, GroupInfo, and the last
// accepted entry in full), one record per stored message
// (m.<group>.<seq>, stored once whatever the number of members), one
// per member device with its cursor (mem.<group>.<account>.<device>),
// the index of a device's groups (dg.<account>.<device>.<group>), the
// idempotence records of sends (s.<group>.<hash>) and the winning commit
// of each epoch (e.<group>.<epoch>). One file-backed stream holds the
// one-time KeyPackages (<prefix>.kp.<account>.<device>, taken oldest
// first by deleting the message: only one taker wins a delete) and the
// contents above relay.GroupInlineMax in parts (<prefix>.blob.<id>.<n>).
//
// Atomicity. JetStream has no multi-key transaction, so a commit or a
// send is made atomic by a single write: the compare-and-set of the
// group's head on its KV revision (a publish with expected last subject
// sequence). The head carries the whole new entry (message, Welcome,
// added and removed devices, GroupInfo); that write is the commit
// point, and orders the group: two commits for one epoch both read the
// head at that epoch, one set wins, the other sees the new head and gets
// the winner. The other records (message, members, idempotence and
// epoch records, the device index) are derived from the head's entry
// and written after it ("materialized"), idempotently and guarded by
// each member record's sequence numbers, so that a late or repeated
// materialization never moves a cursor back or brings back a removed
// device. Whoever next reads the head (any write, fetch, read or
// expiry of that group) finds the entry's message record missing and
// materializes it first; nothing is written on top of an entry not
// materialized. So a crash between the commit point and the end of
// materialization loses nothing and forks nothing: the entry is durable
// in the head and is completed by the next reader; until then (no one
// touches the group) a device the commit added does not find the group
// in its fetch, and ExpireGroups, run periodically, completes it.
//
// What JetStream does not give, and what happens instead:
//   - A large content is written in parts before the head. A crash
//     between the parts and the head's compare-and-set, or a lost race,
//     leaves parts that nothing references; a lost race deletes them,
//     a crash leaks them until the stream is purged (bounded by crashes,
//     not by traffic). A replaced GroupInfo's parts are deleted after
//     the commit that replaced it; a crash in between leaks them too.
//   - StoreKeyPackages publishes one KeyPackage at a time: a crash in
//     between stores some of an upload (the client tops up by count).
//   - A removed device's member record, once forgotten by ExpireGroups,
//     stays as a small tombstone: it guards against a late
//     materialization adding the device again.
//   - The head holds the whole last entry: a commit adding and removing
//     the most devices the relay allows (10,000 each) with inline
//     contents makes a head of about 0.75 MB, so the server's max_payload
//     must stay at its default (1 MB) or above; a larger head is
//     refused, nothing stored. Materializing a commit writes one member
//     record per added or removed device, one request each.
//   - FetchGroups, ExpireGroups and Group list keys with a JetStream
//     consumer (one per call and group), and read messages one request
//     each: slower than one SQL query (docs/BENCHMARKS.md).
//
// Durability: as for relay/natsmailbox, JetStream acknowledges a write
// once it is in the server's file store but by default fsyncs only
// every 2 minutes (sync_interval), so an OS crash or power loss can
// lose acknowledged commits and messages, and a lost head write can
// make a later commit for the same epoch win on restart: a fork between
// the members who saw each. Run nats-server >= 2.10 with
// `jetstream { sync_interval: always }` (each write is fsynced before
// the ack), or replicate the bucket and stream (Options.Replicas 3 on a
// cluster).
package natsgroups
