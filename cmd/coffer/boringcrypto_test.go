package main

import (
	"cmp"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// TestBoringCryptoBuild: coffer built with GOEXPERIMENT=boringcrypto (as
// `make build` builds it here) says so in `coffer version`, and passes the
// device's self-test on BoringSSL's module. It uses COFFER_BIN when that is
// such a build (make unit passes make build's), and builds one otherwise
// (cached after the first time). It skips where Go has no BoringCrypto, and
// where cgo's C compiler is missing unless COFFER_REQUIRE_TOOLS is set.
func TestBoringCryptoBuild(t *testing.T) {
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skipf("GOEXPERIMENT=boringcrypto needs linux/amd64 or linux/arm64, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	goCmd := cmp.Or(os.Getenv("GO"), "go")
	env, err := exec.CommandContext(ctx, goCmd, "env", "CGO_ENABLED", "CC").Output()
	if err != nil {
		t.Skipf("no go command to build with: %v", err)
	}
	f := strings.Fields(string(env))
	if len(f) < 2 || f[0] != "1" {
		testtool.SkipOrFail(t, "BoringCrypto needs cgo (CGO_ENABLED=1 and a C compiler: apt-get install gcc)")
	}
	if _, err := exec.LookPath(f[1]); err != nil {
		testtool.SkipOrFail(t, "BoringCrypto needs cgo's C compiler %s (apt-get install gcc)", f[1])
	}

	bin := os.Getenv("COFFER_BIN")
	if bin == "" || !strings.Contains(runBin(ctx, t, bin, "version"), "crypto boringcrypto") {
		bin = filepath.Join(t.TempDir(), "coffer")
		build := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-o", bin, ".")
		build.Env = append(os.Environ(), "GOEXPERIMENT=boringcrypto")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build with GOEXPERIMENT=boringcrypto: %v\n%s", err, out)
		}
	}
	if out := runBin(ctx, t, bin, "version"); !strings.HasSuffix(strings.TrimSpace(out), " crypto boringcrypto") {
		t.Fatalf("coffer version = %q, want it to end in \"crypto boringcrypto\"", out)
	}
	if out := runBin(ctx, t, bin, "hsm", "selftest"); strings.TrimSpace(out) != "self-test passed (crypto boringcrypto)" {
		t.Fatalf("coffer hsm selftest = %q", out)
	}
	// Go's FIPS 140-3 mode and BoringCrypto exclude each other: such a
	// binary refuses to start rather than run in a mode it is not in.
	cmd := exec.CommandContext(ctx, bin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=on")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "incompatible with GOEXPERIMENT=boringcrypto") {
		t.Errorf("GODEBUG=fips140=on coffer version: %v\n%s", err, out)
	}
}

// runBin runs bin with args and returns its standard output; it fails the
// test if bin fails.
func runBin(ctx context.Context, t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
