package hsm

import (
	"crypto/ed25519"
	"crypto/x509"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// sigVector is a signature verification test case.
type sigVector struct {
	wpVector
	Msg, Sig hexBytes
}

func TestWycheproofECDSA(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	// P1363 files: the signature is r||s, as PKCS#11 carries it.
	for _, file := range wpFiles(t, regexp.MustCompile(`^ecdsa_secp(256|384|521)r1_sha(256|384|512)_p1363_test\.json$`)) {
		t.Run(file, func(t *testing.T) {
			type group struct {
				PublicKeyDer hexBytes `json:"publicKeyDer"`
				Sha          string   `json:"sha"`
				Tests        []sigVector
			}
			for _, g := range wpLoad[group](t, file) {
				pub, err := td.ImportPublicKey(t.Context(), s, g.PublicKeyDer, nil)
				if err != nil {
					t.Errorf("%s: import public key: %v", file, err)
					continue
				}
				m := Mechanism{Type: hashFor(t, file, g.Sha).ecdsa}
				n := p1363Half(t, file)
				for _, tc := range g.Tests {
					err := td.Verify(s, pub, m, tc.Msg, tc.Sig)
					if full, ok := p1363Padded(tc.Sig, n); ok && slices.Contains(tc.Flags, "SignatureSize") {
						// PKCS #11 takes a shorter r||s for verification (r and s
						// each half of it), which Wycheproof's P1363 files call
						// invalid: it must verify as the same r and s padded do.
						if want := td.Verify(s, pub, m, tc.Msg, full); (err == nil) != (want == nil) {
							t.Errorf("%s %v: short r||s: %v, padded: %v", file, tc.wpVector, err, want)
						}
						continue
					}
					c.judge(t, file, tc.wpVector, err, ErrSignatureInvalid, ErrSignatureLenRange)
				}
			}
		})
	}
	c.done(t, "ECDSA")
}

// p1363Half is the byte length of r and s in a P1363 file's signatures.
func p1363Half(t *testing.T, file string) int {
	t.Helper()
	for curve, n := range map[string]int{"secp256r1": 32, "secp384r1": 48, "secp521r1": 66} {
		if strings.Contains(file, curve) {
			return n
		}
	}
	t.Fatalf("%s: unknown curve", file)
	return 0
}

// p1363Padded returns sig, a shorter r||s as PKCS #11 allows for
// verification (even length below 2n, r and s each half), with r and s
// left-padded to n bytes; ok is false for any other length.
func p1363Padded(sig []byte, n int) ([]byte, bool) {
	if len(sig) == 0 || len(sig)%2 != 0 || len(sig) >= 2*n {
		return nil, false
	}
	h := len(sig) / 2
	full := make([]byte, 2*n)
	copy(full[n-h:n], sig[:h])
	copy(full[2*n-h:], sig[h:])
	return full, true
}

// rsaSigGroup is an RSASSA-PKCS1-v1_5 or RSASSA-PSS verification group.
type rsaSigGroup struct {
	KeySize      int      `json:"keySize"`
	PublicKeyDer hexBytes `json:"publicKeyDer"`
	Sha          string   `json:"sha"`
	Mgf          string   `json:"mgf"`
	MgfSha       string   `json:"mgfSha"`
	SLen         int      `json:"sLen"`
	Tests        []sigVector
}

// importRSAPublic imports a group's key. Keys outside 2048..4096 bits must
// be refused with ErrKeySizeRange; then ok is false and the group's vectors
// count as unsupported.
func importRSAPublic(t *testing.T, td *testDevice, s SessionID, c *wpCounts, file string, g rsaSigGroup) (id ObjectID, ok bool) {
	t.Helper()
	id, err := td.ImportPublicKey(t.Context(), s, g.PublicKeyDer, nil)
	if g.KeySize < 2048 || g.KeySize > 4096 {
		for _, tc := range g.Tests {
			c.refused(t, file, tc.wpVector, err, ErrKeySizeRange)
		}
		return 0, false
	}
	if err != nil {
		t.Errorf("%s: import RSA-%d public key: %v", file, g.KeySize, err)
		return 0, false
	}
	return id, true
}

func TestWycheproofRSAPKCS1Verify(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	for _, file := range wpFiles(t, regexp.MustCompile(`^rsa_signature_\d+_sha(224|256|384|512)_test\.json$`)) {
		t.Run(file, func(t *testing.T) {
			for _, g := range wpLoad[rsaSigGroup](t, file) {
				pub, ok := importRSAPublic(t, td, s, &c, file, g)
				if !ok {
					continue
				}
				m := Mechanism{Type: hashFor(t, file, g.Sha).pkcs1}
				for _, tc := range g.Tests {
					err := td.Verify(s, pub, m, tc.Msg, tc.Sig)
					c.judge(t, file, tc.wpVector, err, ErrSignatureInvalid, ErrSignatureLenRange)
				}
			}
		})
	}
	c.done(t, "RSA PKCS#1 v1.5")
}

func TestWycheproofRSAPSSVerify(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	// The _params_ files repeat these vectors with RSASSA-PSS key encodings,
	// which SPKI import does not take.
	re := regexp.MustCompile(`^rsa_pss_(\d+_sha(1|224|256|384|512)_mgf1(sha(1|224|256|384|512))?_\d+|misc)_test\.json$`)
	for _, file := range wpFiles(t, re) {
		t.Run(file, func(t *testing.T) {
			for _, g := range wpLoad[rsaSigGroup](t, file) {
				pub, ok := importRSAPublic(t, td, s, &c, file, g)
				if !ok {
					continue
				}
				if g.Mgf != "MGF1" {
					t.Fatalf("%s: MGF %q", file, g.Mgf)
				}
				h := hashFor(t, file, g.Sha)
				m := Mechanism{Type: h.pss, Hash: h.hash, MGF: hashFor(t, file, g.MgfSha).mgf, SaltLen: uint(g.SLen)}
				// The device documents MGF1 with the message hash only, and
				// a salt of at least one byte (mech.PSSParams).
				supported := g.MgfSha == g.Sha && g.SLen >= 1
				for _, tc := range g.Tests {
					err := td.Verify(s, pub, m, tc.Msg, tc.Sig)
					if !supported {
						c.refused(t, file, tc.wpVector, err, ErrMechanismParamInvalid)
						continue
					}
					c.judge(t, file, tc.wpVector, err, ErrSignatureInvalid, ErrSignatureLenRange)
				}
			}
		})
	}
	c.done(t, "RSA-PSS")
}

func TestWycheproofEd25519(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	const file = "ed25519_test.json"
	t.Run(file, func(t *testing.T) {
		type group struct {
			PublicKey struct {
				Pk hexBytes `json:"pk"`
			} `json:"publicKey"`
			Tests []sigVector
		}
		for _, g := range wpLoad[group](t, file) {
			spki, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(g.PublicKey.Pk))
			if err != nil {
				t.Fatalf("%s: encode public key: %v", file, err)
			}
			pub, err := td.ImportPublicKey(t.Context(), s, spki, nil)
			if err != nil {
				t.Errorf("%s: import public key: %v", file, err)
				continue
			}
			m := Mechanism{Type: ck.CKM_EDDSA}
			for _, tc := range g.Tests {
				err := td.Verify(s, pub, m, tc.Msg, tc.Sig)
				c.judge(t, file, tc.wpVector, err, ErrSignatureInvalid, ErrSignatureLenRange)
			}
		}
	})
	c.done(t, "Ed25519")
}
