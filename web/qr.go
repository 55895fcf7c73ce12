package web

import (
	"encoding/base64"
	"net/http"

	"rsc.io/qr"
)

// maxQRData bounds what /qr.png encodes (a safety number's scannable form
// is under 100 bytes).
const maxQRData = 1024

// qrPNG draws the bytes in ?data= (standard base64, as the agent's API
// gives a safety number's scannable form) as a QR code, so the app shows
// it as an image from its own origin and needs no QR code of its own.
func qrPNG(w http.ResponseWriter, r *http.Request) {
	data, err := base64.StdEncoding.DecodeString(r.URL.Query().Get("data"))
	if err != nil || len(data) == 0 || len(data) > maxQRData {
		http.Error(w, "sotto web: data must be 1 to 1024 bytes in standard base64", http.StatusBadRequest)
		return
	}
	code, err := qr.Encode(string(data), qr.M)
	if err != nil {
		http.Error(w, "sotto web: "+err.Error(), http.StatusBadRequest)
		return
	}
	code.Scale = 6
	w.Header().Set("Content-Type", "image/png")
	w.Write(code.PNG())
}
