// Package archtest holds no code: its tests check that the module's folder tree keeps the
// architecture it claims (protocol packages free of networking, storage and logging; the
// relay free of client code; the client core free of UI code) and that every package says
// what it is for in exactly one package doc comment.
package archtest
