package groups

// quarantine is a commit this device refused (recover.go).
type quarantine struct {
	Epoch uint64 `json:"epoch"`
}
