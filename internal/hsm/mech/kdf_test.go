package mech

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// NIST CAVS ANSI X9.63 KDF vectors (ansx963_2001.rsp).
func TestX963KDFVectors(t *testing.T) {
	tests := []struct {
		h                crypto.Hash
		z, info, keyData string
	}{
		{crypto.SHA1, "1c7d7b5f0597b03d06a018466ed1a93e30ed4b04dc64ccdd", "", "bf71dffd8f4d99223936beb46fee8ccc"},
		{crypto.SHA256, "96c05619d56c328ab95fe84b18264b08725b85e33fd34f08", "", "443024c3dae66b95e6f5670601558f71"},
		{crypto.SHA256, "22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d", "75eef81aa3041e33b80971203d2c0c52",
			"c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf" +
				"92f30d0097111485500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21"},
	}
	for _, tt := range tests {
		t.Run(tt.h.String(), func(t *testing.T) {
			want := unhex(t, tt.keyData)
			got, err := X963KDF(tt.h, unhex(t, tt.z), unhex(t, tt.info), len(want))
			skipRefusedByFIPSOnly(t, err)
			wantBytes(t, got, want)
		})
	}
}

// Every hash and output lengths that end inside a hash block, against
// OpenSSL's X963KDF.
func TestX963KDFOpenSSL(t *testing.T) {
	testtool.Require(t, "openssl")
	z := bytes.Repeat([]byte{0x3c}, 48)
	info := []byte("shared info")
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for _, n := range []int{1, 20, 33, 100, 800} {
			got, err := X963KDF(h, z, info, n)
			if err != nil {
				t.Fatal(err)
			}
			want := opensslKDF(t, "X963KDF", n, "digest:"+opensslDigest(h), "hexsecret:"+hex.EncodeToString(z), "hexinfo:"+hex.EncodeToString(info))
			if !bytes.Equal(got, want) {
				t.Fatalf("%v, %d bytes: %x, OpenSSL %x", h, n, got, want)
			}
		}
	}
}

func TestX963KDFRefusals(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := X963KDF(crypto.SHA256, []byte{1}, nil, n); !errors.Is(err, ErrParam) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
	if _, err := X963KDF(crypto.MD5, []byte{1}, nil, 16); !errors.Is(err, ErrParam) {
		t.Errorf("MD5: %v", err)
	}
}

func opensslDigest(h crypto.Hash) string {
	return map[crypto.Hash]string{crypto.SHA1: "SHA1", crypto.SHA224: "SHA224", crypto.SHA256: "SHA256",
		crypto.SHA384: "SHA384", crypto.SHA512: "SHA512"}[h]
}

// opensslKDF runs `openssl kdf` and returns its n bytes.
func opensslKDF(t *testing.T, alg string, n int, opts ...string) []byte {
	t.Helper()
	args := []string{"kdf", "-keylen", fmt.Sprint(n)}
	for _, o := range opts {
		args = append(args, "-kdfopt", o)
	}
	out, err := exec.Command("openssl", append(args, alg)...).Output()
	if err != nil {
		t.Fatalf("openssl %v: %v", args, err)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(string(out)), ":", ""))
	if err != nil || len(b) != n {
		t.Fatalf("openssl output %q: %v", out, err)
	}
	return b
}
