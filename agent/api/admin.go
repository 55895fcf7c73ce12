package api

import "time"

// The organization's console (GET/POST /v1/admin/…): only the device that
// holds the organization's key is answered; any other gets forbidden.

// AdminStatus answers GET /v1/admin: whether this device is the
// organization's admin device.
type AdminStatus struct {
	Admin bool   `json:"admin"`
	Org   string `json:"org,omitempty"`
}

// InviteRequest is POST /v1/admin/invitations.
type InviteRequest struct {
	User string `json:"user"`
	Days int    `json:"days,omitempty"` // default 365
	// Relay is the relay's URL as the invited device reaches it
	// (default: this device's).
	Relay string `json:"relay,omitempty"`
}

// InviteAnswer carries the invitation text: whoever holds it can enroll
// as User until it is used.
type InviteAnswer struct {
	User       string `json:"user"`
	Invitation string `json:"invitation"`
	Days       int    `json:"days"`
}

// OrgMember is one member as the admin device knows them: the users it
// invited or certified, each checked with the relay.
type OrgMember struct {
	User string `json:"user"`
	// Enrolled: the relay serves an identity key for them whose identity
	// certificate verifies under the organization's key.
	Enrolled bool      `json:"enrolled"`
	Invited  time.Time `json:"invited,omitzero"`
	// IdentityKey is a fingerprint of the certified identity key (hex of
	// the first 16 bytes of its SHA-256).
	IdentityKey string `json:"identity_key,omitempty"`
	// CertificateExpires is when their membership ends: the later of
	// their invitation's grant and a certificate signed since.
	CertificateExpires time.Time   `json:"certificate_expires,omitzero"`
	Devices            []OrgDevice `json:"devices"`
	DevicesErr         string      `json:"devices_error,omitempty"`
}

// OrgDevice is one device of a member.
type OrgDevice struct {
	ID      uint32    `json:"id"`
	Created time.Time `json:"created"`
}

// OrgMembersAnswer answers GET /v1/admin/members.
type OrgMembersAnswer struct {
	Members []OrgMember `json:"members"`
}

// NoticeRequest is POST /v1/admin/notices.
type NoticeRequest struct {
	Text string `json:"text"`
}

// PublishAnswer says for how many devices the relay queued a signed
// document.
type PublishAnswer struct {
	Devices int `json:"devices"`
}

// Policy is the organization's device policy (GET and PUT
// /v1/admin/policy). A PUT publishes the whole policy: what it leaves
// out takes its default. Version 0: the one in force plus one.
type Policy struct {
	Version             uint64 `json:"version"`
	FailedUnlockLimit   uint32 `json:"failed_unlock_limit"`
	IdleLockSeconds     uint32 `json:"idle_lock_seconds"`
	DisappearingMinSecs uint32 `json:"disappearing_min_seconds"`
	DisappearingMaxSecs uint32 `json:"disappearing_max_seconds"`
	AttachmentsDisabled bool   `json:"attachments_disabled"`
	CallsDisabled       bool   `json:"calls_disabled"`
	SealedOnly          bool   `json:"sealed_only"`
	MinPassphraseBits   uint32 `json:"min_passphrase_bits"`
	WitnessBoundSeconds uint32 `json:"witness_bound_seconds"`
	MinClientVersion    string `json:"min_client_version,omitempty"`
}

// WipeRequest is POST /v1/admin/wipe: a signed wipe order for one device
// of a member.
type WipeRequest struct {
	User   string `json:"user"`
	Device uint32 `json:"device"`
	// ValidSeconds: the order expires after this long (default 7 days).
	ValidSeconds int64 `json:"valid_seconds,omitempty"`
}

// CertifyRequest is POST /v1/admin/certify: a new membership certificate.
type CertifyRequest struct {
	User string `json:"user"`
	Days int    `json:"days,omitempty"` // default 365
}

// Delivery is how far one published document got (GET
// /v1/admin/deliveries): queued by the relay for Queued devices, applied
// (a signed receipt verified, a wipe order's confirmation for a wipe) by
// the devices in Applied.
type Delivery struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	At      time.Time `json:"at"`
	User    string    `json:"user,omitempty"`
	Device  uint32    `json:"device,omitempty"`
	Queued  int       `json:"queued"`
	Applied []string  `json:"applied"`
	Bad     int       `json:"bad,omitempty"`
}

// DeliveriesAnswer answers GET /v1/admin/deliveries.
type DeliveriesAnswer struct {
	Deliveries []Delivery `json:"deliveries"`
}
