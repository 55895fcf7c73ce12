package store

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkUnlock times Open with the default Argon2id parameters for a
// right passphrase, a wrong one and the duress one (which destroys the
// key file; FinishWipe, outside the timer, does the rest), each on a fresh
// store. The three should match (docs/BENCHMARKS.md).
func BenchmarkUnlock(b *testing.B) {
	ctx := context.Background()
	setup := func(b *testing.B) string {
		dir := filepath.Join(b.TempDir(), "home")
		s, err := Create(ctx, dir, []byte("correct horse battery"), &Options{KDF: DefaultKDFParams})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for i := range 200 {
			if err := s.Put(ctx, "t", []byte{byte(i)}, make([]byte, 1000)); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.SetDuress([]byte("under duress"), rand.Reader); err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "attachments"), 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "attachments", "a.bin"), make([]byte, 4<<20), 0o600); err != nil {
			b.Fatal(err)
		}
		syscall.Sync() // the setup's writes are not the unlock's to flush
		return dir
	}
	for _, tc := range []struct{ name, pass string }{
		{"right", "correct horse battery"}, {"wrong", "typo"}, {"duress", "under duress"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// Every case gets a fresh store per unlock, built outside the
			// timer, so that all three run under the same conditions
			// (the duress one needs it anyway).
			b.StopTimer()
			for range b.N {
				dir := setup(b)
				b.StartTimer()
				s, _ := Open(ctx, dir, []byte(tc.pass))
				b.StopTimer()
				if s != nil {
					s.Close()
				}
				_ = FinishWipe(dir)
			}
		})
	}
}
