package agent

import (
	"net/http"

	"sotto/agent/api"
	"sotto/client"
)

// scanVerify compares the other person's scanned safety-number QR code
// with this device's safety number with them; only a match marks them
// verified (client.VerifyScanned).
func (h *handler) scanVerify(r *http.Request, c *client.Client) (any, error) {
	var req api.ScanRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if len(req.Scanned) == 0 || len(req.Scanned) > 1024 {
		return nil, badRequest("scanned must be 1 to 1024 bytes")
	}
	ok, err := c.VerifyScanned(r.Context(), r.PathValue("user"), req.Scanned)
	if err != nil {
		return nil, err
	}
	return api.ScanAnswer{Match: ok, Verified: ok}, nil
}
