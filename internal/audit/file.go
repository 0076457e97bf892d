package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// logFile is what the writer needs of the file; tests wrap *os.File.
type logFile interface {
	io.ReadWriteCloser
	Sync() error
	Truncate(size int64) error
}

// openFile opens path for reading and appending, creating it (and making
// the directory entry durable) if needed, and locks it against a second
// writer.
func openFile(path string) (logFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	if err := lockFile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: open directory: %w", err)
	}
	if err := d.Sync(); err != nil {
		return errors.Join(fmt.Errorf("audit: sync directory %s: %w", dir, err), d.Close())
	}
	return d.Close()
}
