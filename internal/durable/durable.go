// Package durable writes files that survive a crash: a new file is written
// under a temporary name, fsynced, renamed into place and its directory
// fsynced, so a reader sees either the old file or the whole new one, never
// a part, and a file once committed is on disk.
package durable

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// A File is a new file that appears at its path only when committed.
// Until then it is a temporary file beside the path.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts a new file for path with permission perm. The temporary
// file is new, made by this call alone, so it never carries more than
// perm whatever was left over. The directory must exist.
func Create(path string, perm os.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("durable: %w", err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("durable: %w", err)
	}
	return &File{File: f, path: path}, nil
}

// Commit fsyncs the file, closes it, renames it to its path and fsyncs the
// directory. After a failed Commit the path holds what it held before.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("durable: %s: already committed or aborted", f.path)
	}
	f.done = true
	tmp := f.Name()
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("durable: write %s: %w", f.path, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("durable: %w", err)
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort closes and removes the temporary file. It does nothing after
// Commit, so it may be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// WriteFile writes data to path as Create and Commit do.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("durable: write %s: %w", path, err)
	}
	return f.Commit()
}

// WriteFileAll creates path's directory and any missing parents (0700),
// as os.MkdirAll does, and writes data to path as WriteFile does.
func WriteFileAll(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("durable: %w", err)
	}
	return WriteFile(path, data, perm)
}

// WriteFrom copies r to path as Create and Commit do, and returns the
// number of bytes written.
func WriteFrom(path string, r io.Reader, perm os.FileMode) (int64, error) {
	f, err := Create(path, perm)
	if err != nil {
		return 0, err
	}
	defer f.Abort()
	n, err := io.Copy(f, r)
	if err != nil {
		return n, fmt.Errorf("durable: write %s: %w", path, err)
	}
	return n, f.Commit()
}

// SyncDir fsyncs a directory, making its new and renamed entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("durable: %w", err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("durable: sync directory %s: %w", dir, err)
	}
	return d.Close()
}
