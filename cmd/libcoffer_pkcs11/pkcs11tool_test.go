package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// OpenSC's pkcs11-tool: key generation (RSA, EC, AES), signing and listing,
// then the self-test in full over those keys.
func TestPKCS11Tool(t *testing.T) {
	tool := testtool.Path(t, "pkcs11-tool")
	needCluster(t)
	p11 := func(args ...string) string {
		return run(t, tool, append([]string{"--module", env.lib, "--login", "--pin", userPIN}, args...)...)
	}
	p11("--keypairgen", "--key-type", "rsa:2048", "--id", "01", "--label", "tool-rsa", "--usage-sign", "--usage-decrypt")
	p11("--keypairgen", "--key-type", "EC:prime256v1", "--id", "02", "--label", "tool-ec", "--usage-sign")
	p11("--keygen", "--key-type", "AES:32", "--id", "03", "--label", "tool-aes")
	list := p11("--list-objects")
	for _, want := range []string{"tool-rsa", "tool-ec", "tool-aes", "Private Key Object; RSA", "Private Key Object; EC", "Secret Key Object; AES"} {
		if !strings.Contains(list, want) {
			t.Errorf("--list-objects lacks %q:\n%s", want, list)
		}
	}
	data := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(data, []byte("signed by pkcs11-tool"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, mech string }{{"01", "SHA256-RSA-PKCS"}, {"01", "SHA256-RSA-PKCS-PSS"}, {"02", "ECDSA-SHA256"}} {
		t.Run("sign "+tc.mech, func(t *testing.T) {
			sig := filepath.Join(t.TempDir(), "sig")
			p11("--sign", "--id", tc.id, "-m", tc.mech, "--input-file", data, "--output-file", sig)
			p11("--verify", "--id", tc.id, "-m", tc.mech, "--input-file", data, "--signature-file", sig)
		})
	}
	out := p11("--test")
	t.Logf("pkcs11-tool --test --login:\n%s", out)
	if !strings.Contains(out, "No errors") {
		t.Fatalf("pkcs11-tool --test reported errors:\n%s", out)
	}
}
