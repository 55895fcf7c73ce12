// Package mls implements the Messaging Layer Security protocol (RFC 9420)
// for the cipher suites the Go standard library can provide: 0x0001
// (X25519, AES-128-GCM, SHA-256, Ed25519), 0x0002 (P-256), 0x0003
// (X25519, ChaCha20-Poly1305), 0x0005 (P-521) and 0x0007 (P-384). Suites
// 0x0004 and 0x0006 need X448/Ed448 and are rejected with
// ErrUnsupportedCipherSuite.
//
// A client publishes KeyPackages (NewKeyPackage) and keeps their
// PrivateKeys. A group starts with NewGroup; members change it with
// commits (Group.Commit, applied locally with Group.Apply once the
// delivery service has accepted it) that add and remove members, carry
// proposals sent earlier (ProposeAdd, ProposeRemove, ProposeUpdate) and
// may inject external PSKs. New members join from the commit's Welcome
// (Join) or, without an invitation, from a published GroupInfo with an
// external commit (JoinExternal). Every other message goes through
// Group.Handle: application data (sent with Group.Seal) is returned,
// proposals are kept for the next commit, and commits move the group to
// the next epoch atomically — on any error the group is unchanged.
// Group.Export derives per-epoch secrets for the application.
// Application messages that arrive just after a commit still decrypt for
// a short window of past epochs (SetPastEpochs). Peek reads a message's
// public header (group, epoch, kind) without keys. Group.MarshalBinary
// and UnmarshalGroup persist a member's state, secrets included, for the
// caller to store encrypted.
//
// The application vets credentials with a CredentialValidator
// (GroupOptions, JoinOptions, ExternalJoinOptions or
// Group.SetCredentialValidator): it is called with the signature key for
// every new or changed leaf — the creator's own, every leaf of a joined
// tree, added KeyPackages, Updates and the leaf of every received
// commit's UpdatePath, external commits included. External commits may
// remove only the joiner's old leaf (JoinExternalWithOptions with
// Resync). Parties outside the group propose with NewMemberAddProposal
// (a client asking to join) and, if listed in the external_senders
// extension, with an ExternalProposer or ExternalRemoveProposal. A
// committed ReInit (ProposeReInit) is completed with Group.ReInit, whose Welcome members join with
// JoinOptions.ReInitFrom. Received KeyPackages are checked against their
// lifetime with LifetimeTolerance of clock skew (the clock can be
// injected: GroupOptions.Now, JoinOptions.Now, Group.SetClock); leaves
// already in a joined tree are not, since a member's key_package leaf
// keeps its original lifetime until it commits.
//
// Messages are byte strings in the MLSMessage encoding. The package is
// bytes in, bytes out: it does no networking, storage or logging, does
// not panic on malformed input, and never puts secret material in an
// error message. Secrets of an epoch are wiped when the group leaves it.
//
// PreSharedKey proposals may inject external PSKs (ProposePSK) or the
// resumption PSK of a recent epoch of the group (ProposeResumptionPSK,
// CommitOptions.ResumptionPSKs; SetResumptionEpochs sets how many are
// kept). External senders are listed in the external_senders extension
// (ProposeExternalSender) and propose Add, Remove, PreSharedKey, ReInit
// and GroupContextExtensions with an ExternalProposer. Group.Branch
// starts a subgroup whose members join with JoinOptions.BranchFrom.
package mls
