package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// clientFolders are the folders the client keeps beside the store, whose
// files may be plaintext (downloaded attachments). Only they are wiped
// with the store: the store's folder may hold the user's own files.
var clientFolders = []string{"attachments"}

// wipeRest shreds the files of the client's folders under storeDir and
// removes the emptied folders. It runs after the key file and the
// database are gone. Symbolic links are removed, never followed.
func wipeRest(storeDir string) error {
	var errs []error
	for _, f := range clientFolders {
		if err := wipeTree(filepath.Join(storeDir, f)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func wipeTree(dir string) error {
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
		switch {
		case err == nil && st.Mode().IsRegular():
			err = shred(dir) // a file where the folder should be
		case err == nil:
			err = os.Remove(dir) // a link: removed, not followed
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			if err := shred(p); err != nil {
				errs = append(errs, err)
			}
		default:
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
	return errors.Join(errs...)
}
