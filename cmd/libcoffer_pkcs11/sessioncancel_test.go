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

// TestSessionCancel runs testdata/sessioncancel.c: through the 3.0
// interface, C_SessionCancel ends the operations its flags name and
// ignores the others (JDK 21 and later cancel an abandoned Signature or
// Cipher this way; before, the library answered CKR_FUNCTION_NOT_SUPPORTED
// and SunPKCS11 pooled the session with the operation still active).
func TestSessionCancel(t *testing.T) {
	cc := testtool.Path(t, "gcc")
	needCluster(t)
	bin := filepath.Join(t.TempDir(), "sessioncancel")
	out, err := exec.Command(cc, "-Wall", "-Werror", "-I/usr/include/nss", "-I/usr/include/nspr",
		"-o", bin, "testdata/sessioncancel.c", "-ldl").CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, env.lib, userPIN)
	cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+env.config)
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "OK") {
		t.Fatalf("sessioncancel: %v\n%s\n--- library log tail:\n%s", err, got, logTail())
	}
}
