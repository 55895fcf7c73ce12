// Package witness is the key log witness the organization runs away from
// the relay (DESIGN §7). It keeps the last tree of the relay's key
// transparency log it co-signed, and co-signs a newer tree only when the
// relay proves it extends that one: it never co-signs two roots for one
// size, nor a tree that is not an extension of what it signed, so a relay
// cannot show two users two logs that both carry its cosignature. Its
// state is written to disk (fsynced, renamed, directory fsynced) before a
// cosignature leaves it.
//
// The HTTP API (modelled on C2SP tlog-witness, in Sotto's own encoding):
//
//	POST /add-checkpoint   body: "old N\n", one base64 proof hash per line,
//	                       an empty line, the base64 signed head, "\n"
//	  200  the cosignature (transparency.Cosignature, binary)
//	  409  the size the witness last co-signed, "N\n" (retry from it)
//	  400  malformed, 403 log signature, 413 too large, 422 not consistent
//	GET /checkpoint        the newest co-signed head and its cosignature,
//	                       each base64 on a line (404: none yet)
//
// Client is the relay's side of the same API.
package witness
