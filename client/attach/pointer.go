package attach

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"sotto/client/content"
	"sotto/internal/safetext"
)

// Limits on pointer metadata.
const (
	maxFileName    = 255
	maxContentType = 128
	maxCaption     = 4096
)

// CheckPointer validates a received pointer: sizes of the id, key and
// digest, the file size and chunk size, and that the name is a plain base
// name (no directories, so it cannot escape the download folder).
func CheckPointer(p *content.AttachmentPointer) error {
	switch {
	case p == nil:
		return fmt.Errorf("%w: empty", ErrInvalidPointer)
	case len(p.BlobId) != IDSize:
		return fmt.Errorf("%w: blob id must be %d bytes", ErrInvalidPointer, IDSize)
	case len(p.Key) != KeySize:
		return fmt.Errorf("%w: key must be %d bytes", ErrInvalidPointer, KeySize)
	case len(p.Digest) != sha256.Size:
		return fmt.Errorf("%w: digest must be %d bytes", ErrInvalidPointer, sha256.Size)
	case p.Size > MaxFileSize:
		return fmt.Errorf("%w: file too large", ErrInvalidPointer)
	case p.ChunkSize < MinChunkSize || p.ChunkSize > MaxChunkSize:
		return fmt.Errorf("%w: chunk size out of range", ErrInvalidPointer)
	case len(p.FileName) > maxFileName || len(p.ContentType) > maxContentType || len(p.Caption) > maxCaption:
		return fmt.Errorf("%w: metadata too long", ErrInvalidPointer)
	case !utf8.ValidString(p.FileName) || !utf8.ValidString(p.ContentType) || !utf8.ValidString(p.Caption):
		return fmt.Errorf("%w: metadata is not UTF-8", ErrInvalidPointer)
	}
	if p.FileName != "" && BaseName(p.FileName) != p.FileName {
		return fmt.Errorf("%w: file name is not a plain name", ErrInvalidPointer)
	}
	return nil
}

// SafeName reduces name to a base name safe to create in a folder and to
// show (safetext.SaveName): no separators, no leading dots or dashes, no
// control, bidi or invisible characters; "attachment" when nothing is
// left. A received file is saved under SafeName of its pointer's name.
func SafeName(name string) string { return safetext.SaveName(name) }

// BaseName is the structural part of SafeName: a base name, no separators,
// leading dots or control characters, so that it cannot name another
// folder. A sender names its file with it, and a received pointer's name
// must already pass it (CheckPointer). A name with bidi or invisible
// characters passes (a hostile sender sends what it likes anyway); it is
// neutralized when saved (SafeName) and shown (safetext), not refused.
func BaseName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' || r == ':' {
			return -1
		}
		return r
	}, name)
	name = strings.TrimLeft(name, ".")
	if len(name) > maxFileName {
		name = name[:maxFileName]
		for !utf8.ValidString(name) {
			name = name[:len(name)-1]
		}
	}
	if name == "" {
		return "attachment"
	}
	return name
}
