package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// toolObjects parses pkcs11-tool --list-objects into one map of fields per
// object, "kind" being its header line ("Private Key Object; EC").
func toolObjects(list string) []map[string]string {
	var objs []map[string]string
	for _, line := range strings.Split(list, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
		case !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t"):
			objs = append(objs, map[string]string{"kind": strings.TrimSpace(line)})
		case len(objs) > 0:
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
				objs[len(objs)-1][strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return objs
}

// TestKeyPairIDPKCS11Tool: pkcs11-tool --keypairgen without --id gives both
// halves the same CKA_ID, derived from the public key, so pkcs11-tool
// finds the pair by that id: it signs with the private key and verifies
// with the public one.
func TestKeyPairIDPKCS11Tool(t *testing.T) {
	tool := testtool.Path(t, "pkcs11-tool")
	needCluster(t)
	p11 := func(args ...string) string {
		return run(t, tool, append([]string{"--module", env.lib, "--login", "--pin", userPIN}, args...)...)
	}
	data := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(data, []byte("paired by id"), 0o600); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tc := range []struct{ keyType, label, mech string }{
		{"EC:prime256v1", "noid-ec", "ECDSA-SHA256"},
		{"rsa:2048", "noid-rsa", "SHA256-RSA-PKCS"},
	} {
		t.Run(tc.label, func(t *testing.T) {
			p11("--keypairgen", "--key-type", tc.keyType, "--label", tc.label, "--usage-sign")
			ids := map[string]string{}
			for _, o := range toolObjects(p11("--list-objects")) {
				if o["label"] == tc.label {
					ids[strings.SplitN(o["kind"], ";", 2)[0]] = o["ID"]
				}
			}
			priv, pub := ids["Private Key Object"], ids["Public Key Object"]
			if len(priv) != 40 || priv != pub {
				t.Fatalf("CKA_ID of the private key %q, of the public key %q: want the same 20-byte id (%v)", priv, pub, ids)
			}
			if seen[priv] {
				t.Fatalf("id %s again", priv)
			}
			seen[priv] = true
			sig := filepath.Join(t.TempDir(), "sig")
			p11("--sign", "--id", priv, "-m", tc.mech, "--input-file", data, "--output-file", sig)
			p11("--verify", "--id", priv, "-m", tc.mech, "--input-file", data, "--signature-file", sig)
		})
	}
}
