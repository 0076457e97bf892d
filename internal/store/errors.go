package store

import (
	"errors"
	"fmt"
	"syscall"
)

// Errors callers compare with errors.Is. They arrive wrapped with context.
var (
	// ErrNotFound: no live record with that kind and id (tombstones included).
	ErrNotFound = errors.New("record not found")
	// ErrNoMaskingKey: the store has no masking key yet (see SetMaskingKey).
	ErrNoMaskingKey = errors.New("no masking key set")
	// ErrWrongNodeKey: the sealed masking key does not open under the node key.
	ErrWrongNodeKey = errors.New("masking key does not open under this node key")
	// ErrMaskingKeyMismatch: a different masking key is already set.
	ErrMaskingKeyMismatch = errors.New("a different masking key is already set")
	// ErrBadNodeKey: the node key file is unusable (permissions, size, type).
	ErrBadNodeKey = errors.New("unusable node key file")
	// ErrBadBox: a sealed record from elsewhere does not open under this
	// store's masking key (another cluster, or tampered in transit).
	ErrBadBox = errors.New("sealed box does not open under the masking key")
	// ErrMalformedRecord: bytes that are not a valid encoded record.
	ErrMalformedRecord = errors.New("malformed record")
	// ErrStale: the record is not the tombstone version the caller named.
	ErrStale = errors.New("record changed since that version")
	// ErrLocked: another process holds the database file.
	ErrLocked = errors.New("database is locked by another process")
	// ErrCorruptDatabase: the database file cannot be used (truncated, garbage).
	ErrCorruptDatabase = errors.New("corrupt database file")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("store is closed")
	// ErrNoSpace: the filesystem holding the database is full (or the
	// user's quota is used up). The write is rolled back and not
	// acknowledged; nothing stored before is harmed, and writes succeed
	// again once space returns. It is not a corrupt database.
	ErrNoSpace = errors.New("no space left for the store's database")
)

// noSpace marks an error of a failed commit or open that the filesystem
// being full caused with ErrNoSpace; other errors pass unchanged.
func noSpace(err error) error {
	if err == nil || errors.Is(err, ErrNoSpace) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// CorruptError reports a stored record that fails to parse or to open.
// Its data is never returned.
type CorruptError struct {
	Kind Kind
	ID   string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store: record %s %q is corrupt: %v", e.Kind, e.ID, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }
