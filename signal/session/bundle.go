package session

// PreKeyBundle is what a relay serves for one remote device: everything
// needed to start a session with it without its participation.
type PreKeyBundle struct {
	RegistrationID        uint32
	DeviceID              uint32
	PreKeyID              uint32 // valid only when HasPreKey
	HasPreKey             bool
	PreKey                []byte // serialized EC public key (0x05 || 32)
	SignedPreKeyID        uint32
	SignedPreKey          []byte // serialized EC public key
	SignedPreKeySignature []byte
	KyberPreKeyID         uint32
	KyberPreKey           []byte // serialized Kyber-1024 public key (0x08 || 1568)
	KyberPreKeySignature  []byte
	IdentityKey           []byte // serialized (0x05 || 32)
}
