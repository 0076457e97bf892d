package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// GnuTLS's p11tool lists the token's objects through the library.
func TestP11ToolListAll(t *testing.T) {
	tool := testtool.Path(t, "p11tool")
	p11 := testtool.Path(t, "pkcs11-tool")
	needCluster(t)
	run(t, p11, "--module", env.lib, "--login", "--pin", userPIN,
		"--keypairgen", "--key-type", "EC:prime256v1", "--id", "20", "--label", "p11tool-ec", "--usage-sign")
	cmd := []string{"--provider", env.lib, "--login", "--set-pin", userPIN, "--list-all", "pkcs11:token=cluster-local"}
	out := run(t, tool, cmd...)
	if !strings.Contains(out, "p11tool-ec") {
		t.Fatalf("p11tool --list-all does not list p11tool-ec:\n%s", out)
	}
}

// OpenSSL signs through the PKCS#11 engine (libengine-pkcs11-openssl) with a
// Coffer private key; openssl verifies with the public key exported by
// pkcs11-tool.
func TestOpenSSLEngineSign(t *testing.T) {
	openssl := testtool.Path(t, "openssl")
	p11 := testtool.Path(t, "pkcs11-tool")
	needCluster(t)
	engine, err := opensslEngine(t, openssl, "pkcs11.so")
	if err == nil {
		_, err = os.Stat(engine)
	}
	if err != nil {
		testtool.SkipOrFail(t, "OpenSSL PKCS#11 engine: %v: install Debian package libengine-pkcs11-openssl", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "openssl.cnf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = %s
MODULE_PATH = %s
init = 0
`, engine, env.lib), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPENSSL_CONF", conf)
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, []byte("signed through the OpenSSL engine"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, keyType, id string }{{"ec", "EC:prime256v1", "30"}, {"rsa", "rsa:2048", "31"}} {
		t.Run(tc.name, func(t *testing.T) {
			label := "openssl-" + tc.name
			run(t, p11, "--module", env.lib, "--login", "--pin", userPIN,
				"--keypairgen", "--key-type", tc.keyType, "--id", tc.id, "--label", label, "--usage-sign")
			pubDER := filepath.Join(dir, tc.name+".der")
			run(t, p11, "--module", env.lib, "--login", "--pin", userPIN, "--read-object", "--type", "pubkey", "--id", tc.id, "-o", pubDER)
			pubPEM := filepath.Join(dir, tc.name+".pem")
			run(t, openssl, "pkey", "-pubin", "-inform", "DER", "-in", pubDER, "-out", pubPEM)
			sig := filepath.Join(dir, tc.name+".sig")
			run(t, openssl, "dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine",
				"-sign", "pkcs11:token=cluster-local;object="+label+";type=private", "-passin", "pass:"+userPIN, "-out", sig, data)
			out := run(t, openssl, "dgst", "-sha256", "-verify", pubPEM, "-signature", sig, data)
			if !strings.Contains(out, "Verified OK") {
				t.Fatalf("openssl verify: %s", out)
			}
		})
	}
}

// opensslEngine is the path of engine in the directory openssl itself
// names (`openssl version -e`), whatever the machine's architecture.
func opensslEngine(t *testing.T, openssl, engine string) (string, error) {
	out, err := exec.CommandContext(t.Context(), openssl, "version", "-e").Output()
	if err != nil {
		return "", fmt.Errorf("openssl version -e: %w", err)
	}
	_, dir, ok := strings.Cut(strings.TrimSpace(string(out)), "ENGINESDIR: ")
	if !ok {
		return "", fmt.Errorf("openssl version -e: no ENGINESDIR in %q", out)
	}
	return filepath.Join(strings.Trim(dir, `"`), engine), nil
}
