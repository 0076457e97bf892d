package main

// Wycheproof vectors (https://github.com/C2SP/wycheproof) run through the
// library with miekg/pkcs11: AES-GCM and ECDSA P-256 (P1363 signatures,
// r||s as PKCS#11 carries them). The module is fetched with the go command
// at the same pin as internal/hsm's Wycheproof tests, whose helpers this
// file repeats in small (they live in a _test file of another package).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"
)

const (
	wycheproofModule  = "github.com/C2SP/wycheproof"
	wycheproofVersion = "v0.0.0-20250901140545-b51abcfb8daf"
)

var wycheproofFetch struct {
	once sync.Once
	dir  string
	err  error
}

// wycheproofFile reads one vector file, downloading the module once; a
// failed download fails the test, so vectors never silently go unchecked.
func wycheproofFile(t *testing.T, name string) []byte {
	t.Helper()
	f := &wycheproofFetch
	f.once.Do(func() {
		cmd := exec.Command("go", "mod", "download", "-json", wycheproofModule+"@"+wycheproofVersion)
		cmd.Dir = os.TempDir() // outside the main module: go.mod and go.sum stay as they are
		out, err := cmd.Output()
		if err != nil {
			f.err = fmt.Errorf("go mod download %s@%s: %w\n%s", wycheproofModule, wycheproofVersion, err, out)
			return
		}
		var j struct{ Dir, Error string }
		if err := json.Unmarshal(out, &j); err != nil || j.Error != "" || j.Dir == "" {
			f.err = fmt.Errorf("go mod download: %v %q\n%s", err, j.Error, out)
			return
		}
		f.dir = filepath.Join(j.Dir, "testvectors_v1")
	})
	if f.err != nil {
		t.Fatal(f.err)
	}
	b, err := os.ReadFile(filepath.Join(f.dir, name))
	must(t, "read "+name, err)
	return b
}

// wpLoad reads the test groups of a vector file into G.
func wpLoad[G any](t *testing.T, name string) []G {
	t.Helper()
	var f struct {
		TestGroups []G `json:"testGroups"`
	}
	if err := json.Unmarshal(wycheproofFile(t, name), &f); err != nil || len(f.TestGroups) == 0 {
		t.Fatalf("%s: %d groups, %v", name, len(f.TestGroups), err)
	}
	return f.TestGroups
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

type wpVector struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Result  string   `json:"result"` // valid, invalid or acceptable
}

func (v wpVector) String() string {
	return fmt.Sprintf("tcId %d (%q, %s)", v.TcID, v.Comment, v.Result)
}

// wpCounts tallies a suite's verdicts.
type wpCounts struct{ valid, invalid, acceptable, unsupported int }

// judge checks the library's verdict: err nil is acceptance; a refusal must
// carry one of refusals.
func (c *wpCounts) judge(t *testing.T, v wpVector, err error, refusals ...pkcs11.Error) {
	t.Helper()
	refused := err != nil
	rightCode := false
	for _, r := range refusals {
		rightCode = rightCode || rvOf(err) == r
	}
	switch v.Result {
	case "valid":
		c.valid++
		if refused {
			t.Errorf("%v: valid vector refused: %v", v, err)
		}
	case "invalid":
		c.invalid++
		if !refused {
			t.Errorf("%v: invalid vector accepted", v)
		} else if !rightCode {
			t.Errorf("%v: refused with %v, want one of %v", v, err, refusals)
		}
	case "acceptable":
		c.acceptable++
		if refused && !rightCode {
			t.Errorf("%v: refused with %v, want one of %v", v, err, refusals)
		}
	default:
		t.Errorf("%v: unknown result", v)
	}
}

func (c *wpCounts) done(t *testing.T, suite string) {
	t.Helper()
	if c.valid+c.invalid+c.acceptable == 0 {
		t.Fatalf("%s: no vector checked", suite)
	}
	t.Logf("%s through the library: valid %d, invalid %d, acceptable %d, unsupported (refusal checked) %d",
		suite, c.valid, c.invalid, c.acceptable, c.unsupported)
}

// gcmSupported mirrors the device's documented GCM subset (mech.NewGCM):
// a 12-byte IV with a 12..16-byte tag, or a 1..256-byte IV with a 16-byte tag.
func gcmSupported(ivLen, tagLen int) bool {
	return ivLen == 12 && tagLen >= 12 && tagLen <= 16 || ivLen >= 1 && ivLen <= 256 && tagLen == 16
}

func TestWycheproofAESGCMThroughLibrary(t *testing.T) {
	l := coffer(t)
	x := &mechTest{l: l, s: l.session(t), used: map[uint]bool{}}
	type group struct {
		TagSize int `json:"tagSize"`
		Tests   []struct {
			wpVector
			Key, IV, AAD, Msg, CT, Tag hexBytes
		}
	}
	var c wpCounts
	for _, g := range wpLoad[group](t, "aes_gcm_test.json") {
		for _, tc := range g.Tests {
			key := x.secret(t, pkcs11.CKK_AES, tc.Key)
			sealed := append(bytes.Clone(tc.CT), tc.Tag...)
			run := func(enc bool, in []byte) ([]byte, error) {
				p := pkcs11.NewGCMParams(tc.IV, tc.AAD, g.TagSize)
				defer p.Free()
				init, op := l.ctx.DecryptInit, l.ctx.Decrypt
				if enc {
					init, op = l.ctx.EncryptInit, l.ctx.Encrypt
				}
				if err := init(x.s, mech(pkcs11.CKM_AES_GCM, p), key); err != nil {
					return nil, err
				}
				return op(x.s, in)
			}
			if !gcmSupported(len(tc.IV), g.TagSize/8) {
				c.unsupported++
				_, err := run(true, tc.Msg)
				wantRV(t, fmt.Sprintf("%v: encrypt with a %d-byte IV and %d-bit tag", tc.wpVector, len(tc.IV), g.TagSize), err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
			} else {
				// A zeroed 12-byte IV asks the HSM for a random one
				// (TestMiekgGCMIV): such vectors check decryption only.
				if tc.Result != "invalid" && !bytes.Equal(tc.IV, make([]byte, 12)) {
					ct, err := run(true, tc.Msg)
					if err != nil || !bytes.Equal(ct, sealed) {
						t.Errorf("%v: C_Encrypt = %x, %v; want %x", tc.wpVector, ct, err, sealed)
					}
				}
				pt, err := run(false, sealed)
				c.judge(t, tc.wpVector, err, pkcs11.CKR_ENCRYPTED_DATA_INVALID)
				if err == nil && tc.Result != "invalid" && !bytes.Equal(pt, tc.Msg) {
					t.Errorf("%v: C_Decrypt = %x, want %x", tc.wpVector, pt, tc.Msg)
				}
			}
			must(t, "C_DestroyObject", l.ctx.DestroyObject(x.s, key))
		}
	}
	c.done(t, "AES-GCM")
}

func TestWycheproofECDSAP256ThroughLibrary(t *testing.T) {
	l := coffer(t)
	s := l.session(t)
	p256, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	type group struct {
		PublicKeyDer hexBytes `json:"publicKeyDer"`
		Tests        []struct {
			wpVector
			Msg, Sig hexBytes
		}
	}
	for _, f := range []struct {
		file string
		mech uint
	}{
		{"ecdsa_secp256r1_sha256_p1363_test.json", pkcs11.CKM_ECDSA_SHA256},
		{"ecdsa_secp256r1_sha512_p1363_test.json", pkcs11.CKM_ECDSA_SHA512},
	} {
		t.Run(f.file, func(t *testing.T) {
			var c wpCounts
			for _, g := range wpLoad[group](t, f.file) {
				k, err := x509.ParsePKIXPublicKey(g.PublicKeyDer)
				must(t, "parse the group's public key", err)
				ecKey, ok := k.(*ecdsa.PublicKey)
				if !ok {
					t.Fatalf("group key is %T", k)
				}
				raw, err := ecKey.Bytes()
				must(t, "encode the point", err)
				point, _ := asn1.Marshal(raw)
				pub, err := l.ctx.CreateObject(s, []*pkcs11.Attribute{
					attr(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
					attr(pkcs11.CKA_EC_PARAMS, p256), attr(pkcs11.CKA_EC_POINT, point),
					attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_VERIFY, true),
				})
				must(t, "C_CreateObject EC public key", err)
				verify := func(msg, sig []byte) error {
					err := l.ctx.VerifyInit(s, mech(f.mech, nil), pub)
					if err == nil {
						err = l.ctx.Verify(s, msg, sig)
					}
					return err
				}
				for _, tc := range g.Tests {
					err := verify(tc.Msg, tc.Sig)
					if h := len(tc.Sig) / 2; slices.Contains(tc.Flags, "SignatureSize") && len(tc.Sig)%2 == 0 && h > 0 && h < 32 {
						// PKCS#11 takes a shorter r||s for verification (r and
						// s each half of it), which Wycheproof's P1363 files
						// call invalid: it must verify as r and s padded do.
						full := make([]byte, 64)
						copy(full[32-h:32], tc.Sig[:h])
						copy(full[64-h:], tc.Sig[h:])
						if want := verify(tc.Msg, full); (err == nil) != (want == nil) {
							t.Errorf("%v: short r||s: %v, padded: %v", tc.wpVector, err, want)
						}
						continue
					}
					c.judge(t, tc.wpVector, err, pkcs11.CKR_SIGNATURE_INVALID, pkcs11.CKR_SIGNATURE_LEN_RANGE)
				}
				must(t, "C_DestroyObject", l.ctx.DestroyObject(s, pub))
			}
			c.done(t, "ECDSA "+f.file)
		})
	}
}
