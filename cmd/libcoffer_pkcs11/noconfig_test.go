package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// With no readable configuration the library has no log file a person would
// look in: C_Initialize fails with CKR_FUNCTION_FAILED and says on standard
// error, once, which file it tried, why, and what to set.
func TestNoConfigSaysSoOnStderr(t *testing.T) {
	tool := testtool.Path(t, "pkcs11-tool")
	if _, err := os.Stat(env.lib); err != nil {
		t.Fatalf("library not built: %v (%v)", err, env.err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"hsms": ["127.0.0.1:1"], "nonsense": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, why string }{
		{"missing", filepath.Join(dir, "missing.json"), "no such file or directory"},
		{"invalid", bad, `unknown field "nonsense"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), tool, "--module", env.lib, "-L")
			cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+tc.path, "TMPDIR="+t.TempDir())
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err == nil {
				t.Fatalf("pkcs11-tool -L succeeded without a configuration:\n%s", stdout.String())
			}
			out := stderr.String() + stdout.String()
			if !strings.Contains(out, "CKR_FUNCTION_FAILED") {
				t.Errorf("C_Initialize should fail with CKR_FUNCTION_FAILED:\n%s", out)
			}
			if n := strings.Count(stderr.String(), "coffer-pkcs11:"); n != 1 {
				t.Fatalf("want one coffer-pkcs11 line on stderr, got %d:\n%s", n, stderr.String())
			}
			for _, want := range []string{"cannot read configuration " + tc.path + " (", tc.why, "COFFER_PKCS11_CONFIG", "coffer configure pkcs11"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}

// A PIN without "username:" is refused as a wrong PIN, and the module log
// says the form it expects, at warn level, without the PIN.
func TestPINWithoutColonLogsTheForm(t *testing.T) {
	tool := testtool.Path(t, "pkcs11-tool")
	needCluster(t)
	const pin = "no-colon-secret-4711"
	cmd := exec.CommandContext(t.Context(), tool, "--module", env.lib, "--login", "--pin", pin, "--list-objects")
	cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+env.config)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CKR_PIN_INCORRECT") {
		t.Fatalf("login with %q: want CKR_PIN_INCORRECT, got %v:\n%s", pin, err, out)
	}
	b, err := os.ReadFile(env.log)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	found := false
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "username:password") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warn line naming username:password in the module log:\n%s", logTail())
	}
	if strings.Contains(log, pin) {
		t.Errorf("the module log holds the PIN")
	}
}
