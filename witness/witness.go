package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sotto/transparency"
)

const (
	// KeyFile holds the witness's Ed25519 seed, hex, mode 0600.
	KeyFile = "witness.key"
	// StateFile holds the newest co-signed head and its cosignature.
	StateFile  = "state"
	stateMagic = "sotto witness state v1\n"
)

// Errors of AddCheckpoint, one per HTTP status (see statusOf).
var (
	// ErrConflict: the old size is not the size last co-signed (409); see
	// ConflictError.
	ErrConflict = errors.New("witness: old size is not the size last co-signed")
	// ErrBadSignature: the head is not signed by the configured log key (403).
	ErrBadSignature = errors.New("witness: head not signed by the log key")
	// ErrInconsistent: the head does not extend the tree last co-signed (422).
	ErrInconsistent = errors.New("witness: head does not extend the tree last co-signed")
)

// ConflictError is ErrConflict with the size the witness last co-signed.
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%v (it is %d)", ErrConflict, e.Size)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// WitnessSize returns the size the witness last co-signed (the relay's
// submitter reads it through a one-method interface).
func (e *ConflictError) WitnessSize() uint64 { return e.Size }

// Config configures a Witness.
type Config struct {
	Dir    string             // holds StateFile
	Key    ed25519.PrivateKey // the witness's key
	LogKey ed25519.PublicKey  // the key the log signs its heads with
	Now    func() time.Time   // default time.Now
	Logger *slog.Logger       // required
}

// Witness co-signs heads of one log. It is safe for concurrent use.
type Witness struct {
	cfg Config

	mu    sync.Mutex // held across check, save and sign: one tree at a time
	head  transparency.SignedHead
	cosig []byte // nil: nothing co-signed yet (size 0)
	// save writes the state durably; a test replaces it.
	save func(b []byte) error
}

// New loads the witness's state from cfg.Dir.
func New(cfg Config) (*Witness, error) {
	var problems []error
	if len(cfg.Key) != ed25519.PrivateKeySize {
		problems = append(problems, errors.New("witness: config: Key is not an Ed25519 private key"))
	}
	if len(cfg.LogKey) != ed25519.PublicKeySize {
		problems = append(problems, errors.New("witness: config: LogKey is not an Ed25519 public key"))
	}
	if cfg.Dir == "" {
		problems = append(problems, errors.New("witness: config: Dir is required"))
	}
	if cfg.Logger == nil {
		problems = append(problems, errors.New("witness: config: Logger is required"))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Witness{cfg: cfg}
	path := filepath.Join(cfg.Dir, StateFile)
	w.save = func(b []byte) error { return writeFileDurably(path, b) }
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return w, nil
	case err != nil:
		return nil, fmt.Errorf("witness: state: %w", err)
	}
	if w.head, w.cosig, err = decodeState(b); err != nil {
		return nil, fmt.Errorf("witness: state %s: %w", path, err)
	}
	if err := w.head.Verify(cfg.LogKey); err != nil {
		return nil, fmt.Errorf("witness: state %s holds a head of another log: %w", path, err)
	}
	return w, nil
}

// PublicKey returns the witness's public key.
func (w *Witness) PublicKey() ed25519.PublicKey { return w.cfg.Key.Public().(ed25519.PublicKey) }

// Latest returns the newest co-signed head and its cosignature (nil, nil:
// none yet).
func (w *Witness) Latest() (head, cosig []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cosig == nil {
		return nil, nil
	}
	return w.head.Encode(), bytes.Clone(w.cosig)
}

// AddCheckpoint co-signs r's head if it is signed by the log key, r's old
// size is the size last co-signed, and r's proof shows the head extends
// the tree last co-signed. The new state is on disk before it returns the
// encoded cosignature.
func (w *Witness) AddCheckpoint(r Request) ([]byte, error) {
	head, err := transparency.VerifyHead(w.cfg.LogKey, r.Head)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := w.head
	if w.cosig == nil {
		cur = transparency.SignedHead{Root: transparency.EmptyRoot} // nothing co-signed: the empty tree
	}
	if r.OldSize != cur.Size {
		return nil, &ConflictError{Size: cur.Size}
	}
	switch {
	case head.Size < cur.Size:
		return nil, fmt.Errorf("%w: size %d is smaller than %d", ErrInconsistent, head.Size, cur.Size)
	case head.Size == cur.Size && head.Root != cur.Root:
		return nil, fmt.Errorf("%w: another root for size %d", ErrInconsistent, head.Size)
	}
	if err := transparency.VerifyConsistency(cur.Size, head.Size, cur.Root, head.Root, r.Proof); err != nil {
		return nil, fmt.Errorf("%w: from size %d to %d: %w", ErrInconsistent, cur.Size, head.Size, err)
	}
	c := transparency.Cosign(w.cfg.Key, w.cfg.LogKey, head.Size, head.Root, uint64(w.cfg.Now().Unix()))
	enc := c.Encode()
	if err := w.save(encodeState(head, enc)); err != nil {
		return nil, fmt.Errorf("witness: state not saved, nothing co-signed: %w", err)
	}
	if head.Size > cur.Size {
		w.cfg.Logger.Info("witness: co-signed", "size", head.Size, "from", cur.Size)
	}
	w.head, w.cosig = head, enc
	return bytes.Clone(enc), nil
}

func encodeState(head transparency.SignedHead, cosig []byte) []byte {
	b := []byte(stateMagic)
	b = append(b, head.Encode()...)
	return append(b, cosig...)
}

func decodeState(b []byte) (transparency.SignedHead, []byte, error) {
	rest, ok := bytes.CutPrefix(b, []byte(stateMagic))
	if !ok || len(rest) != transparency.SignedHeadSize+transparency.CosignatureSize {
		return transparency.SignedHead{}, nil, errors.New("not a witness state file")
	}
	head, err := transparency.DecodeHead(rest[:transparency.SignedHeadSize])
	if err != nil {
		return head, nil, err
	}
	cosig := bytes.Clone(rest[transparency.SignedHeadSize:])
	if _, err := transparency.DecodeCosignature(cosig); err != nil {
		return head, nil, err
	}
	return head, cosig, nil
}

// writeFileDurably replaces path with b: a temporary file written and
// fsynced, renamed over path, and the directory fsynced, so that after it
// returns the new content survives a crash, and before, the old one does.
func writeFileDurably(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// InitKey creates the witness key in dir (KeyFile, mode 0600) and returns
// its public key. It refuses to overwrite an existing key.
func InitKey(dir string) (ed25519.PublicKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, KeyFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("witness: key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(priv.Seed()) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("witness: key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("witness: key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("witness: key: %w", err)
	}
	return pub, nil
}

// LoadKey reads the witness key from dir.
func LoadKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("witness: key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("witness: key %s: not a hex Ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
