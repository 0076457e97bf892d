// Package testtool finds the programs and files that Coffer's tests drive
// from the host: openssl, pkcs11-tool, p11tool, the aws CLI, SoftHSMv2, a
// JDK, gcc. A test that lacks one skips on a developer's machine, saying
// which Debian package to install, and fails where COFFER_REQUIRE_TOOLS is
// set (.ci/run sets it), so that CI never passes by skipping.
//
// Only tests import it (internal/layers_test.go checks); it imports nothing
// from Coffer.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether the run requires every tool: COFFER_REQUIRE_TOOLS
// is set.
func Required() bool {
	return os.Getenv("COFFER_REQUIRE_TOOLS") != ""
}

// SkipOrFail ends a test that cannot run here: it fails tb when tools are
// Required, and skips it otherwise.
func SkipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if Required() {
		tb.Fatalf(format, args...)
	}
	tb.Skipf(format+" (COFFER_REQUIRE_TOOLS unset, so skipping)", args...)
}

// Path returns where the program name is on PATH, or ends the test
// (SkipOrFail) naming the Debian package that has it.
func Path(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(tb, "%s not found: install Debian package %s: %v", name, debianPackage(name), err)
	}
	return p
}

// Require ends the test (SkipOrFail) unless every one of the programs names
// is on PATH.
func Require(tb testing.TB, names ...string) {
	tb.Helper()
	for _, name := range names {
		Path(tb, name)
	}
}

// File ends the test (SkipOrFail) unless path exists; debianPackage is the
// package that installs it.
func File(tb testing.TB, path, debianPackage string) {
	tb.Helper()
	if _, err := os.Stat(path); err != nil {
		SkipOrFail(tb, "%s not found: install Debian package %s: %v", path, debianPackage, err)
	}
}

// debianPackage names the Debian package that installs the program name.
func debianPackage(name string) string {
	switch name {
	case "aws":
		return "awscli"
	case "pkcs11-tool":
		return "opensc"
	case "p11tool":
		return "gnutls-bin"
	case "java", "javac":
		return "openjdk-17-jdk-headless"
	case "softhsm2-util":
		return "softhsm2"
	default: // gcc, openssl
		return name
	}
}
