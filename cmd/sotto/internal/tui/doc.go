// Package tui is sotto's terminal chat app: a conversation list with unread
// counts, a conversation view with timestamps, delivery and read marks,
// reactions, replies, edits and disappearing messages, an organization
// notices area, and the safety-number screen with its QR code. It is built
// on Bubble Tea v2 and works at 80x24 and without colour: every mark is a
// character, colour only repeats it.
package tui
