package api

// LinkRequest is POST /v1/devices/link/check and /link/approve: a link
// code a new device shows (sotto devices link).
type LinkRequest struct {
	Code string `json:"code"`
	// History (approve only): also send this device's history, contacts
	// and settings, end-to-end encrypted to the new device.
	History bool `json:"history,omitempty"`
}

// LinkCheckAnswer: the code is well formed; Name is the device name it
// carries ("" if none), as the new device's owner typed it.
type LinkCheckAnswer struct {
	Name string `json:"name"`
}

// LinkApproveAnswer: the approval went to the new device.
type LinkApproveAnswer struct {
	Name    string       `json:"name"`
	History *LinkHistory `json:"history,omitempty"`
}

// LinkHistory is what was sent along with an approval.
type LinkHistory struct {
	Messages      int `json:"messages"`
	Conversations int `json:"conversations"`
	Contacts      int `json:"contacts"`
	Omitted       int `json:"omitted,omitempty"`
}

// ScanRequest is POST /v1/contacts/{user}/scan: the bytes read from the
// other person's safety-number QR code (base64 in JSON).
type ScanRequest struct {
	Scanned []byte `json:"scanned"`
}

// ScanAnswer: Match, the codes agree and the contact is now verified;
// else nothing changed.
type ScanAnswer struct {
	Match    bool `json:"match"`
	Verified bool `json:"verified"`
}

// HistoryImportAnswer answers POST /v1/devices/history/import: the
// history the approving device sent at linking (kept for later with sotto
// devices link --defer-history, or left pending by a failed import) is
// now in this device's store.
type HistoryImportAnswer struct {
	Messages      int `json:"messages"`
	Conversations int `json:"conversations"`
	Contacts      int `json:"contacts"`
	// Expired: messages whose disappearing timer ran out meanwhile, left out.
	Expired int `json:"expired,omitempty"`
}
