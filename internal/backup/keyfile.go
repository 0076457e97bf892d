package backup

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyLen is the length of a backup key.
const KeyLen = 32

// ErrBadKeyFile: the backup key file is unusable (permissions, size, type).
var ErrBadKeyFile = errors.New("unusable backup key file")

// CreateKeyFile makes a new random backup key at path (mode 0600) if there
// is none; an existing file is only checked (ReadKeyFile). It reports
// whether it made one.
func CreateKeyFile(path string) (created bool, err error) {
	if _, err := os.Lstat(path); err == nil {
		k, err := ReadKeyFile(path)
		clear(k)
		return false, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("backup key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("backup key: %w", err)
	}
	key := make([]byte, KeyLen)
	defer clear(key)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("backup key: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err := f.Write(key); err != nil {
		return false, fmt.Errorf("backup key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("backup key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("backup key %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return true, nil
}

// ReadKeyFile reads a backup key, refusing a file that group or others may
// access, that is not a regular file, or that is not exactly KeyLen bytes.
// The caller zeroes the key after use.
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("backup key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("backup key: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("backup key %s: not a regular file: %w", path, ErrBadKeyFile)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("backup key %s: mode %#o allows group or other access, want 0600: %w", path, fi.Mode().Perm(), ErrBadKeyFile)
	case fi.Size() != KeyLen:
		return nil, fmt.Errorf("backup key %s: %d bytes, want %d: %w", path, fi.Size(), KeyLen, ErrBadKeyFile)
	}
	key := make([]byte, KeyLen)
	if _, err := io.ReadFull(f, key); err != nil {
		clear(key)
		return nil, fmt.Errorf("backup key %s: %w", path, err)
	}
	return key, nil
}
