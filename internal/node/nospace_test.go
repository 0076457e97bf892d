package node

import (
	"fmt"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/store"
)

// TestDeviceStatusNoSpace: a write the store refused because its disk is
// full reaches the client as CKR_DEVICE_MEMORY, however the device wrapped
// it, not as the CKR_DEVICE_ERROR of a broken HSM.
func TestDeviceStatusNoSpace(t *testing.T) {
	full := fmt.Errorf("store: put object \"x\": store: commit: %w", fmt.Errorf("%w: %w", store.ErrNoSpace, syscall.ENOSPC))
	for name, err := range map[string]error{
		"store":       full,
		"device":      fmt.Errorf("%w: store: %w", hsm.ErrDevice, full),
		"device user": &hsm.Error{Op: "create user", Err: fmt.Errorf("%w: store user: %w", hsm.ErrDevice, full)},
	} {
		t.Run(name, func(t *testing.T) {
			wantErr(t, deviceStatus(err), codes.Internal, "CKR_DEVICE_MEMORY")
		})
	}
	wantErr(t, deviceStatus(fmt.Errorf("%w: store: %w", hsm.ErrDevice, syscall.EIO)), codes.Internal, "CKR_DEVICE_ERROR")
}
