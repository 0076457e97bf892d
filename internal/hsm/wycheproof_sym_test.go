package hsm

import (
	"bytes"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// gcmSupported reports whether the device documents GCM with these IV and
// tag lengths (bytes) as supported: see mech.NewGCM.
func gcmSupported(ivLen, tagLen int) bool {
	return ivLen == mech.GCMStandardIVLen && tagLen >= mech.GCMMinTagLen && tagLen <= mech.GCMTagLen ||
		ivLen >= 1 && ivLen <= mech.GCMMaxIVLen && tagLen == mech.GCMTagLen
}

func TestWycheproofAESGCM(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	const file = "aes_gcm_test.json"
	t.Run(file, func(t *testing.T) {
		type group struct {
			TagSize int `json:"tagSize"`
			Tests   []struct {
				wpVector
				Key, IV, AAD, Msg, CT, Tag hexBytes
			}
		}
		for _, g := range wpLoad[group](t, file) {
			for _, tc := range g.Tests {
				key, err := secretKey(t, td, s, ck.CKK_AES, tc.Key)
				if err != nil {
					t.Errorf("%s %v: import AES-%d key: %v", file, tc.wpVector, 8*len(tc.Key), err)
					continue
				}
				m := Mechanism{Type: ck.CKM_AES_GCM, IV: tc.IV, AAD: tc.AAD, TagBits: uint(g.TagSize)}
				sealed := append(bytes.Clone(tc.CT), tc.Tag...)
				if !gcmSupported(len(tc.IV), g.TagSize/8) {
					_, err := td.Encrypt(s, key, m, tc.Msg)
					c.refused(t, file, tc.wpVector, err, ErrMechanismParamInvalid)
					_, err = td.Decrypt(s, key, m, sealed)
					if !isOneOf(err, []*Kind{ErrMechanismParamInvalid}) {
						t.Errorf("%s %v: unsupported IV/tag: decrypt err = %v", file, tc.wpVector, err)
					}
					continue
				}
				// A zeroed 12-byte IV asks the device for a random one
				// (TestGCMZeroIVGeneratedByDevice): such vectors check
				// decryption only.
				zeroIV := bytes.Equal(tc.IV, make([]byte, mech.GCMStandardIVLen))
				if tc.Result != "invalid" && !zeroIV {
					ct, err := td.Encrypt(s, key, m, tc.Msg)
					switch {
					case refusedUnderFIPSOnly(err): // a caller's IV: the HSM chooses every IV there
					case err != nil:
						t.Errorf("%s %v: encrypt: %v", file, tc.wpVector, err)
					case !bytes.Equal(ct, sealed):
						mismatch(t, file, tc.wpVector, "ct||tag", ct, sealed)
					}
				}
				pt, err := td.Decrypt(s, key, m, sealed)
				c.judge(t, file, tc.wpVector, err, ErrEncryptedDataInvalid)
				if err == nil && tc.Result != "invalid" && !bytes.Equal(pt, tc.Msg) {
					mismatch(t, file, tc.wpVector, "plaintext", pt, tc.Msg)
				}
			}
		}
	})
	c.done(t, "AES-GCM")
}

func TestWycheproofAESKeyWrap(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	for _, f := range []struct {
		file string
		mech ck.MechanismType
	}{
		{"aes_wrap_test.json", ck.CKM_AES_KEY_WRAP},
		{"aes_kwp_test.json", ck.CKM_AES_KEY_WRAP_PAD},
	} {
		var c wpCounts
		t.Run(f.file, func(t *testing.T) {
			type group struct {
				Tests []struct {
					wpVector
					Key, Msg, CT hexBytes
				}
			}
			m := Mechanism{Type: f.mech}
			for _, g := range wpLoad[group](t, f.file) {
				for _, tc := range g.Tests {
					key, err := secretKey(t, td, s, ck.CKK_AES, tc.Key)
					if err != nil {
						t.Errorf("%s %v: import AES-%d key: %v", f.file, tc.wpVector, 8*len(tc.Key), err)
						continue
					}
					if tc.Result != "invalid" {
						ct, err := td.Encrypt(s, key, m, tc.Msg)
						switch {
						case err == nil && !bytes.Equal(ct, tc.CT):
							mismatch(t, f.file, tc.wpVector, "wrapped", ct, tc.CT)
						case err != nil && tc.Result == "valid":
							t.Errorf("%s %v: wrap: %v", f.file, tc.wpVector, err)
						case err != nil && !isOneOf(err, []*Kind{ErrDataLenRange}):
							t.Errorf("%s %v: wrap refused with %v, want %q", f.file, tc.wpVector, err, ErrDataLenRange.msg)
						}
					}
					pt, err := td.Decrypt(s, key, m, tc.CT)
					c.judge(t, f.file, tc.wpVector, err, ErrEncryptedDataInvalid, ErrEncryptedDataLen)
					if err == nil && tc.Result != "invalid" && !bytes.Equal(pt, tc.Msg) {
						mismatch(t, f.file, tc.wpVector, "unwrapped", pt, tc.Msg)
					}
				}
			}
		})
		c.done(t, f.file)
	}
}

// macGroup is a Wycheproof MacTest group.
type macGroup struct {
	KeySize int `json:"keySize"` // bits
	TagSize int `json:"tagSize"` // bits
	Tests   []struct {
		wpVector
		Key, Msg, Tag hexBytes
	}
}

// runMAC checks one MAC file: Sign must give the tag of valid vectors (and
// not the tag of invalid ones), Verify must accept exactly the valid ones.
// keyOK tells which key lengths the key type has; CreateObject must refuse
// the others with ErrKeySizeRange.
func runMAC(t *testing.T, td *testDevice, s SessionID, c *wpCounts, file string, kt ck.KeyType, mt ck.MechanismType, keyOK func(int) bool) {
	for _, g := range wpLoad[macGroup](t, file) {
		for _, tc := range g.Tests {
			key, err := secretKey(t, td, s, kt, tc.Key)
			if !keyOK(len(tc.Key)) {
				c.refused(t, file, tc.wpVector, err, ErrKeySizeRange)
				continue
			}
			if err != nil {
				t.Errorf("%s %v: import %d-byte key: %v", file, tc.wpVector, len(tc.Key), err)
				continue
			}
			m := Mechanism{Type: mt, MACLen: uint(g.TagSize / 8)}
			mac, err := td.Sign(s, key, m, tc.Msg)
			switch {
			case refusedUnderFIPSOnly(err):
				c.unsupported++
				continue
			case err != nil:
				t.Errorf("%s %v: sign: %v", file, tc.wpVector, err)
			case tc.Result == "valid" && !bytes.Equal(mac, tc.Tag):
				mismatch(t, file, tc.wpVector, "MAC", mac, tc.Tag)
			case tc.Result == "invalid" && bytes.Equal(mac, tc.Tag):
				t.Errorf("%s %v: device computes the invalid vector's tag %x", file, tc.wpVector, mac)
			}
			err = td.Verify(s, key, m, tc.Msg, tc.Tag)
			c.judge(t, file, tc.wpVector, err, ErrSignatureInvalid, ErrSignatureLenRange)
		}
	}
}

func TestWycheproofAESCMAC(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	const file = "aes_cmac_test.json"
	t.Run(file, func(t *testing.T) {
		runMAC(t, td, s, &c, file, ck.CKK_AES, ck.CKM_AES_CMAC_GENERAL, func(n int) bool { return n == 16 || n == 24 || n == 32 })
	})
	c.done(t, "AES-CMAC")
}

func TestWycheproofHMAC(t *testing.T) {
	t.Parallel()
	td, s := wpDevice(t)
	var c wpCounts
	for _, f := range []struct{ file, hash string }{
		{"hmac_sha1_test.json", "SHA-1"},
		{"hmac_sha224_test.json", "SHA-224"},
		{"hmac_sha256_test.json", "SHA-256"},
		{"hmac_sha384_test.json", "SHA-384"},
		{"hmac_sha512_test.json", "SHA-512"},
	} {
		t.Run(f.file, func(t *testing.T) {
			// Generic secrets are 1..800 bytes on this device.
			runMAC(t, td, s, &c, f.file, ck.CKK_GENERIC_SECRET, hashFor(t, f.file, f.hash).hmac, func(n int) bool { return n >= 1 && n <= maxGenericSecret })
		})
	}
	c.done(t, "HMAC")
}
