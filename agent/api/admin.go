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
	// RelayCA (a PEM certificate) and RelayPin (the SHA-256 of the
	// relay certificate's public key, in hex) are the relay's TLS settings
	// handed on to the invited device (default: this device's).
	RelayCA  string `json:"relay_ca,omitempty"`
	RelayPin string `json:"relay_pin,omitempty"`
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
	// ValidSeconds, when set, is the validity in seconds instead of Days
	// (at most 3650 days).
	ValidSeconds int64 `json:"valid_seconds,omitempty"`
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

// ReleaseApproveRequest is POST /v1/admin/releases/approve: the
// organization's approval of one release, for the given platforms.
type ReleaseApproveRequest struct {
	Version string `json:"version"`
	// WitnessKey is the public key (hex) of the witness that co-signs the
	// release log for the organization.
	WitnessKey string `json:"witness_key"`
	// Platforms are GOOS/GOARCH pairs (default: DefaultPlatforms()).
	Platforms []string `json:"platforms,omitempty"`
	// From is a release mirror: an http(s) URL or an absolute folder
	// (default: the relay's /releases).
	From string `json:"from,omitempty"`
	// ReleaseKey is the release key in hex (default: the one pinned in
	// the agent's binary).
	ReleaseKey string `json:"release_key,omitempty"`
}

// DefaultPlatforms returns the platforms a release approval covers when
// the request names none.
func DefaultPlatforms() []string {
	return []string{"linux/amd64", "linux/arm64", "darwin/arm64", "windows/amd64"}
}

// ApprovedManifest is one platform's manifest an approval covers.
type ApprovedManifest struct {
	Platform string `json:"platform"`
	Commit   string `json:"commit"`
	SHA256   string `json:"manifest_sha256"`
}

// ReleaseApproveAnswer answers POST /v1/admin/releases/approve: the
// approval was signed and queued for Devices devices.
type ReleaseApproveAnswer struct {
	Version   string             `json:"version"`
	Manifests []ApprovedManifest `json:"manifests"`
	Devices   int                `json:"devices"`
}

// DeviceBuild is the release one device reports it runs (signed by the
// device), checked against the release log and the approval.
type DeviceBuild struct {
	User      string `json:"user"`
	Device    uint32 `json:"device"`
	Version   string `json:"version"`
	LeafIndex uint64 `json:"leaf_index"`
	InLog     bool   `json:"in_log"`
	Approved  bool   `json:"approved"`
}

// DeviceBuildsAnswer answers GET /v1/admin/releases/devices; Bad counts
// reports dropped for a bad device signature.
type DeviceBuildsAnswer struct {
	Devices []DeviceBuild `json:"devices"`
	Bad     int           `json:"bad,omitempty"`
}
