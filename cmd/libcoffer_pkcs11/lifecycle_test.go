package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// TestLifecycle runs testdata/lifecycle.c: C_Finalize then C_Initialize
// works again, and forked children (and a child's child) get
// CKR_CRYPTOKI_NOT_INITIALIZED until they initialize, then work, while the
// parent keeps working from another thread; also when the parent forks
// before it ever initialized.
func TestLifecycle(t *testing.T) {
	cc := testtool.Path(t, "gcc")
	needCluster(t)
	bin := filepath.Join(t.TempDir(), "lifecycle")
	out, err := exec.Command(cc, "-Wall", "-Werror", "-I/usr/include/nss", "-I/usr/include/nspr",
		"-o", bin, "testdata/lifecycle.c", "-ldl", "-lpthread").CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	for _, mode := range []string{"initialized", "fresh"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, env.lib, userPIN, mode)
			cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+env.config)
			cmd.WaitDelay = 5 * time.Second // a hung forked child keeps the pipe open
			got, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(got), "OK") {
				t.Fatalf("lifecycle %s: %v\n%s\n--- library log:\n%s", mode, err, got, logTail())
			}
		})
	}
}
