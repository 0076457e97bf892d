package node

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/store"
)

// TestDeviceStatusNoSpace: a write the store (or the audit log) could not
// make because the disk is full reaches the client as CKR_DEVICE_MEMORY,
// however the device wrapped it, not as the CKR_DEVICE_ERROR of a broken HSM.
func TestDeviceStatusNoSpace(t *testing.T) {
	full := fmt.Errorf("store: put object \"x\": store: commit: %w", fmt.Errorf("%w: %w", store.ErrNoSpace, syscall.ENOSPC))
	for name, err := range map[string]error{
		"store":       full,
		"device":      fmt.Errorf("%w: store: %w", hsm.ErrDevice, full),
		"device user": &hsm.Error{Op: "create user", Err: fmt.Errorf("%w: store user: %w", hsm.ErrDevice, full)},
		// The audit log on the same full disk, as internal/audit wraps it.
		"audit": &hsm.Error{Op: "login", Err: fmt.Errorf("%w: done, but its audit record failed: %w", hsm.ErrDevice,
			fmt.Errorf("%w: %s: %w", audit.ErrFailed, "/data/audit.log", fmt.Errorf("write: %w",
				&os.PathError{Op: "write", Path: "/data/audit.log", Err: syscall.ENOSPC})))},
	} {
		t.Run(name, func(t *testing.T) {
			wantErr(t, deviceStatus(err), codes.Internal, "CKR_DEVICE_MEMORY")
		})
	}
	wantErr(t, deviceStatus(fmt.Errorf("%w: store: %w", hsm.ErrDevice, syscall.EIO)), codes.Internal, "CKR_DEVICE_ERROR")
}
