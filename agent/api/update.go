package api

// UpdateRequest is POST /v1/update/check and /v1/update/apply.
type UpdateRequest struct {
	// From is a release mirror: an http(s) URL or an absolute folder
	// ("": the relay's /releases, reached with the device's TLS roots and
	// pin).
	From string `json:"from,omitempty"`
	// Binary (apply only) is the absolute path of the binary to replace;
	// the old one stays beside it as Binary.old.
	Binary string `json:"binary,omitempty"`
}

// UpdateAnswer is what the agent found (and, for apply, installed). The
// agent checks against its own build: Running is its version, and the
// release key is the one pinned in its binary.
type UpdateAnswer struct {
	Running string `json:"running"`
	// Approved is the release the organization approved.
	Approved string `json:"approved"`
	// UpToDate: the approved release is not newer than Running; nothing
	// else is set.
	UpToDate bool `json:"up_to_date,omitempty"`
	// Available is the approved, signed, logged release, newer than
	// Running, at leaf LeafIndex of the release log (TreeSize leaves
	// under a head the organization's witness co-signed).
	Available string `json:"available,omitempty"`
	Commit    string `json:"commit,omitempty"`
	LeafIndex uint64 `json:"leaf_index"`
	TreeSize  uint64 `json:"tree_size"`
	// Installed (apply only) is the binary that now holds Available.
	Installed string `json:"installed,omitempty"`
}
