package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
)

func TestMechanism(t *testing.T) {
	digest := sha256.Sum256([]byte("data"))
	byName := map[string]scheme{}
	for _, s := range schemes() {
		byName[s.name] = s
	}
	for _, c := range []struct {
		name     string
		scheme   string
		f        signFlags
		data     []byte
		mech     ck.MechanismType
		hash     ck.MechanismType
		mgf      ck.MGF
		salt     uint
		input    []byte // nil: the data itself
		inputLen int
		err      string
	}{
		{name: "rsa-pkcs raw", scheme: "rsa-pkcs", f: signFlags{hash: "sha384", dataType: "raw"}, data: []byte("data"), mech: ck.CKM_SHA384_RSA_PKCS},
		{name: "rsa-pkcs digest", scheme: "rsa-pkcs", f: signFlags{hash: "sha256", dataType: "digest"}, data: digest[:], mech: ck.CKM_RSA_PKCS, inputLen: 51},
		{name: "pss raw", scheme: "rsa-pkcs-pss", f: signFlags{hash: "sha512", dataType: "raw", saltLength: -1}, data: []byte("data"),
			mech: ck.CKM_SHA512_RSA_PKCS_PSS, hash: ck.CKM_SHA512, mgf: ck.CKG_MGF1_SHA512, salt: 64},
		{name: "pss digest, mgf and salt given", scheme: "rsa-pkcs-pss", f: signFlags{hash: "sha256", dataType: "digest", mgf: "mgf1-sha1", saltLength: 0}, data: digest[:],
			mech: ck.CKM_RSA_PKCS_PSS, hash: ck.CKM_SHA256, mgf: ck.CKG_MGF1_SHA1, salt: 0},
		{name: "ecdsa raw", scheme: "ecdsa", f: signFlags{hash: "sha1", dataType: "raw"}, data: []byte("data"), mech: ck.CKM_ECDSA_SHA1},
		{name: "ecdsa digest", scheme: "ecdsa", f: signFlags{hash: "sha256", dataType: "digest"}, data: digest[:], mech: ck.CKM_ECDSA},
		{name: "ed25519", scheme: "ed25519", data: []byte("data"), mech: ck.CKM_EDDSA},
		{name: "digest of the wrong length", scheme: "ecdsa", f: signFlags{hash: "sha384", dataType: "digest"}, data: digest[:], err: "a sha384 digest has 48"},
		{name: "bad data type", scheme: "ecdsa", f: signFlags{hash: "sha256", dataType: "hashed"}, data: digest[:], err: `--data-type "hashed"`},
		{name: "bad hash", scheme: "rsa-pkcs", f: signFlags{hash: "md5", dataType: "raw"}, data: digest[:], err: `--hash-function "md5"`},
		{name: "bad mgf", scheme: "rsa-pkcs-pss", f: signFlags{hash: "sha256", dataType: "raw", mgf: "mgf9"}, data: digest[:], err: `--mgf "mgf9"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, input, err := byName[c.scheme].mechanism(&c.f, c.data)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				if _, code := cli.Describe(err); code != cli.ExitUsage {
					t.Errorf("exit code %d", code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != c.mech || m.Hash != c.hash || m.MGF != c.mgf || m.SaltLen != c.salt {
				t.Errorf("mechanism %+v", m)
			}
			switch {
			case c.inputLen != 0 && len(input) != c.inputLen:
				t.Errorf("input of %d bytes, want %d", len(input), c.inputLen)
			case c.inputLen == 0 && !bytes.Equal(input, c.data):
				t.Errorf("input changed")
			}
		})
	}
}

// TestDigestInfo checks the DER that PKCS #1 v1.5 signs against the prefixes
// RFC 8017 §9.2 lists.
func TestDigestInfo(t *testing.T) {
	prefixes := map[string]string{
		"sha1":   "3021300906052b0e03021a05000414",
		"sha224": "302d300d06096086480165030402040500041c",
		"sha256": "3031300d060960864801650304020105000420",
		"sha384": "3041300d060960864801650304020205000430",
		"sha512": "3051300d060960864801650304020305000440",
	}
	for _, h := range cli.HashFunctions() {
		digest := bytes.Repeat([]byte{0xab}, h.Crypto.Size())
		got, err := digestInfo(h, digest)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := hex.DecodeString(prefixes[h.Name])
		if !bytes.Equal(got, append(want, digest...)) {
			t.Errorf("%s: %x", h.Name, got)
		}
	}
}

func TestHMACMechanisms(t *testing.T) {
	for name, want := range map[string]ck.MechanismType{"sha1": ck.CKM_SHA_1_HMAC, "sha256": ck.CKM_SHA256_HMAC, "sha512": ck.CKM_SHA512_HMAC} {
		if m, err := hmacMechanism(name); err != nil || m.Type != want {
			t.Errorf("%s: %v %v", name, m.Type, err)
		}
	}
	if _, err := hmacMechanism("md5"); err == nil {
		t.Error("md5 accepted")
	}
}
