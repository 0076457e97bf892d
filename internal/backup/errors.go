package backup

import (
	"errors"
	"fmt"
)

// ErrRefused is what every *RefusedError matches with errors.Is.
var ErrRefused = errors.New("backup refused")

// Reason says why a blob was refused. Its values are stable: callers
// (and tools' exit messages) name them.
type Reason uint8

// Reasons a blob is refused. Zero is invalid.
const (
	// NotABackup: the bytes do not start as a Coffer backup (or name a
	// format version this build does not read).
	NotABackup Reason = 1
	// Truncated: the blob ends before its trailer says it should.
	Truncated Reason = 2
	// Edited: a byte differs from what the backup key authenticated.
	Edited Reason = 3
	// OtherBackup: the blob is bound to another backup id (swapped or
	// replayed).
	OtherBackup Reason = 4
	// WrongKey: the blob was made under another backup key.
	WrongKey Reason = 5
)

func (r Reason) String() string {
	switch r {
	case NotABackup:
		return "not a backup"
	case Truncated:
		return "truncated"
	case Edited:
		return "edited"
	case OtherBackup:
		return "bound to another backup"
	case WrongKey:
		return "wrong backup key"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// RefusedError reports a blob that failed verification.
type RefusedError struct {
	Reason Reason
	Detail string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("backup refused: %s: %s", e.Reason, e.Detail)
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func refuse(r Reason, format string, args ...any) error {
	return &RefusedError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}
