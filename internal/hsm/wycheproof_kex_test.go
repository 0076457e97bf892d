package hsm

import (
	"bytes"
	"encoding/asn1"
	"regexp"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

func TestWycheproofRSAOAEPDecrypt(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	re := regexp.MustCompile(`^rsa_oaep_(\d+_sha(1|224|256|384|512)_mgf1sha(1|224|256|384|512)|misc)_test\.json$`)
	for _, file := range wpFiles(t, re) {
		t.Run(file, func(t *testing.T) {
			type group struct {
				KeySize         int      `json:"keySize"`
				PrivateKeyPkcs8 hexBytes `json:"privateKeyPkcs8"`
				Sha             string   `json:"sha"`
				Mgf             string   `json:"mgf"`
				MgfSha          string   `json:"mgfSha"`
				Tests           []struct {
					wpVector
					Msg, CT, Label hexBytes
				}
			}
			for _, g := range wpLoad[group](t, file) {
				priv, err := td.ImportPrivateKey(t.Context(), s, g.PrivateKeyPkcs8, nil)
				if g.KeySize < 2048 || g.KeySize > 4096 {
					for _, tc := range g.Tests {
						c.refused(t, file, tc.wpVector, err, ErrKeySizeRange)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: import RSA-%d private key: %v", file, g.KeySize, err)
					continue
				}
				if g.Mgf != "MGF1" {
					t.Fatalf("%s: MGF %q", file, g.Mgf)
				}
				m := Mechanism{Type: ck.CKM_RSA_PKCS_OAEP, Hash: hashFor(t, file, g.Sha).hash, MGF: hashFor(t, file, g.MgfSha).mgf}
				for _, tc := range g.Tests {
					m.Label = tc.Label
					pt, err := td.Decrypt(s, priv, m, tc.CT)
					c.judge(t, file, tc.wpVector, err, ErrEncryptedDataInvalid, ErrEncryptedDataLen)
					if err == nil && tc.Result != "invalid" && !bytes.Equal(pt, tc.Msg) {
						mismatch(t, file, tc.wpVector, "plaintext", pt, tc.Msg)
					}
				}
			}
		})
	}
	c.done(t, "RSA-OAEP")
}

// wpCurves names the curves of the ECDH files: CKA_EC_PARAMS (the DER of
// the named curve's OID) and the scalar length.
var wpCurves = map[string]struct {
	oid  asn1.ObjectIdentifier
	size int
}{
	"secp256r1": {asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}, 32},
	"secp384r1": {asn1.ObjectIdentifier{1, 3, 132, 0, 34}, 48},
	"secp521r1": {asn1.ObjectIdentifier{1, 3, 132, 0, 35}, 66},
}

func TestWycheproofECDH(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	ctx := t.Context()
	var c wpCounts
	// ecpoint files: the peer's public key is the raw point, as
	// CK_ECDH1_DERIVE_PARAMS carries it.
	for _, file := range []string{"ecdh_secp256r1_ecpoint_test.json", "ecdh_secp384r1_ecpoint_test.json", "ecdh_secp521r1_ecpoint_test.json"} {
		t.Run(file, func(t *testing.T) {
			type group struct {
				Curve string `json:"curve"`
				Tests []struct {
					wpVector
					Public, Private, Shared hexBytes
				}
			}
			for _, g := range wpLoad[group](t, file) {
				curve, ok := wpCurves[g.Curve]
				if !ok {
					t.Fatalf("%s: curve %q", file, g.Curve)
				}
				params, err := asn1.Marshal(curve.oid)
				if err != nil {
					t.Fatal(err)
				}
				for _, tc := range g.Tests {
					// The vectors give the scalar as a signed big-endian
					// integer; CKA_VALUE is unsigned, padded to the curve size.
					d := bytes.TrimLeft(tc.Private, "\x00")
					if len(d) > curve.size {
						t.Fatalf("%s %v: private scalar of %d bytes", file, tc.wpVector, len(d))
					}
					d = append(make([]byte, curve.size-len(d)), d...)
					priv, err := td.CreateObject(ctx, s, Template{
						Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY)),
						Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_EC)),
						Bytes(ck.CKA_EC_PARAMS, params),
						Bytes(ck.CKA_VALUE, d),
						Bool(ck.CKA_DERIVE, true),
					})
					if err != nil {
						t.Errorf("%s %v: import private key: %v", file, tc.wpVector, err)
						continue
					}
					m := Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_NULL, PublicData: tc.Public}
					secret, err := td.DeriveKey(ctx, s, priv, m, Template{
						Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)),
						Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)),
						Bool(ck.CKA_SENSITIVE, false),
						Bool(ck.CKA_EXTRACTABLE, true),
					})
					c.judge(t, file, tc.wpVector, err, ErrMechanismParamInvalid)
					if err != nil || tc.Result == "invalid" {
						continue
					}
					vals, err := td.GetAttributes(s, secret, []ck.AttributeType{ck.CKA_VALUE})
					if err != nil {
						t.Errorf("%s %v: read derived CKA_VALUE: %v", file, tc.wpVector, err)
						continue
					}
					if !bytes.Equal(vals[0].Value, tc.Shared) {
						mismatch(t, file, tc.wpVector, "shared secret", vals[0].Value, tc.Shared)
					}
				}
			}
		})
	}
	c.done(t, "ECDH")
}
