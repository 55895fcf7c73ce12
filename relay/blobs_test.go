package relay

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzBlobToken: the relay's blob token parser accepts exactly the tokens
// it minted, unaltered and unexpired, and refuses everything else with
// ErrUnauthenticated.
func FuzzBlobToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	b := &blobService{s: &Server{cfg: Config{Now: func() time.Time { return now }}}, macKey: []byte("0123456789abcdef0123456789abcdef")}
	dev := DeviceAddr{Account: AccountID{1, 2, 3}, Device: 7}
	minted := map[string]blobToken{}
	for _, t := range []blobToken{
		{dev: dev, expires: now.Add(time.Minute), upload: true},
		{dev: dev, expires: now.Add(time.Hour)},
		{dev: DeviceAddr{Device: 1}, expires: now.Add(-time.Second), upload: true}, // expired
	} {
		tok := b.mint(t)
		minted[tok] = t
		f.Add(tok)
	}
	f.Add("")
	f.Add("not base64 !")
	if len(minted) == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := b.verify(tok)
		want, ok := minted[tok]
		if ok && want.expires.After(now) {
			if err != nil || got.dev != want.dev || got.upload != want.upload || !got.expires.Equal(want.expires) {
				t.Fatalf("minted token %q: %+v, %v", tok, got, err)
			}
			return
		}
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("token %q accepted or untyped error: %+v, %v", tok, got, err)
		}
	})
}

// FuzzParseBlobID: the blob id in a request path parses only from 32 hex
// digits, to the id whose String gives them back (lowercased), and is
// refused with ErrBadRequest otherwise.
func FuzzParseBlobID(f *testing.F) {
	var id BlobID
	for i := range id {
		id[i] = byte(i * 17)
	}
	if got, err := ParseBlobID(id.String()); err != nil || got != id {
		f.Fatalf("seed does not load: %v %v", got, err)
	}
	for _, s := range []string{id.String(), "00112233445566778899AABBCCDDEEFF", id.String()[:30], id.String() + "00", "", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseBlobID(s)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(s) != 2*len(id) || id.String() != strings.ToLower(s) {
			t.Fatalf("%q parsed to %v", s, id)
		}
	})
}
