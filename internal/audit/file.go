package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/coffer-hsm/coffer/internal/durable"
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
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}
