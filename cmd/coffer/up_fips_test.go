package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// TestUpFIPS: `coffer up --fips` makes an hsm2m.medium cluster in FIPS mode
// through the control plane. describe-clusters says FIPS; each HSM, asked
// itself (coffer cli cluster info: its NodeInfo), is in FIPS mode and runs
// its cryptography in a FIPS 140-3 module (this test binary is built on Go's
// own cryptography, so its HSMs start again in Go's FIPS 140-3 mode,
// enforced (fips140=only); a
// BoringCrypto build runs on BoringSSL's module); and through the PKCS#11
// module, under pkcs11-tool, a mechanism FIPS mode does not approve
// (CKM_RSA_PKCS signing) is refused while an approved one works.
func TestUpFIPS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("coffer up puts its HSMs on loopback addresses of their own, which only Linux routes without setup")
	}
	testtool.Require(t, "aws", "pkcs11-tool")
	dir := t.TempDir()
	d := newDetachRun(t, dir)
	out, err := d.coffer(3*time.Minute, "up", "--detach", "--fips", "--data-dir", d.data, "--listen", freeLoopback(t))
	if err != nil {
		t.Fatalf("coffer up --detach --fips: %v\n%s", err, out)
	}
	up := d.readUp()
	if got := d.aws(up, "describe-clusters", "--filters", "clusterIds="+up.ClusterID, "--query", "Clusters[0].[HsmType,Mode,State]"); strings.Join(strings.Fields(got), " ") != "hsm2m.medium FIPS ACTIVE" {
		t.Fatalf("describe-clusters: %q, want hsm2m.medium FIPS ACTIVE", got)
	}

	out, err = d.cli(up, "cluster", "info")
	if err != nil {
		t.Fatalf("cluster info: %v\n%s", err, out)
	}
	var info struct {
		Data struct {
			HSMs []struct {
				Address string `json:"address"`
				FIPS    bool   `json:"fips"`
				Crypto  string `json:"crypto-backend"`
			} `json:"hsms"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info.Data.HSMs) != 2 {
		t.Fatalf("cluster info: %v\n%s", err, out)
	}
	for _, h := range info.Data.HSMs {
		if !h.FIPS || (h.Crypto != "boringcrypto" && !strings.HasPrefix(h.Crypto, "go fips140=only (Go Cryptographic Module ")) {
			t.Errorf("HSM %s: fips %v, crypto %q; want FIPS mode in a FIPS 140-3 module", h.Address, h.FIPS, h.Crypto)
		}
	}

	module := pkcs11Module(t, dir)
	tool := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "pkcs11-tool", append([]string{"--module", module, "--login", "--pin",
			up.CryptoUser.Username + ":" + up.CryptoUser.Password}, args...)...)
		cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+up.PKCS11Config)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if out, err := tool("--keypairgen", "--key-type", "rsa:2048", "--label", "fips-rsa", "--id", "01"); err != nil {
		t.Fatalf("RSA-2048 key pair in FIPS mode: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(data, []byte("FIPS mode"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = tool("--sign", "--id", "01", "--mechanism", "RSA-PKCS", "--input-file", data)
	if err == nil || !strings.Contains(out, "CKR_MECHANISM_INVALID") {
		t.Errorf("CKM_RSA_PKCS signing in FIPS mode: %v\n%s; want CKR_MECHANISM_INVALID", err, out)
	}
	if out, err := tool("--sign", "--id", "01", "--mechanism", "SHA256-RSA-PKCS-PSS", "--input-file", data); err != nil {
		t.Errorf("SHA256-RSA-PKCS-PSS signing in FIPS mode: %v\n%s", err, out)
	}
	if out, err := d.coffer(2*time.Minute, "down", "--data-dir", d.data); err != nil {
		t.Fatalf("coffer down: %v\n%s", err, out)
	}
}
