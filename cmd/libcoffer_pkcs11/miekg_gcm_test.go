package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// ckmCloudHSMAESGCM is CloudHSM's vendor mechanism as its applications
// pass it (CKM_VENDOR_DEFINED | CKM_AES_GCM).
const ckmCloudHSMAESGCM = uint(ck.CKM_CLOUDHSM_AES_GCM)

// TestMiekgGCMIV runs testGCMIV on its own.
func TestMiekgGCMIV(t *testing.T) {
	l := coffer(t)
	testGCMIV(t, &mechTest{l: l, s: l.session(t), used: map[uint]bool{}})
}

// testGCMIV checks the IVs of AES-GCM encryption as CloudHSM's
// applications expect them: a zeroed pIv gets a random IV from the HSM,
// written back into the caller's CK_GCM_PARAMS; a caller's own IV is used
// as given; CKM_CLOUDHSM_AES_GCM puts the HSM's IV in front of the
// ciphertext.
func testGCMIV(t *testing.T, x *mechTest) {
	keyValue := bytes.Repeat([]byte{0x24}, 32)
	key := x.secret(t, pkcs11.CKK_AES, keyValue)
	block, _ := aes.NewCipher(keyValue)
	gcm, _ := cipher.NewGCM(block)
	msg, aad := []byte("CloudHSM applications leave pIv zeroed"), []byte("header")
	zero := make([]byte, 12)

	// params returns fresh parameters (miekg frees them at the end of the
	// test) and the mechanism that carries them.
	params := func(t *testing.T, m uint, iv []byte) (*pkcs11.GCMParams, []*pkcs11.Mechanism) {
		p := pkcs11.NewGCMParams(iv, aad, 128)
		t.Cleanup(p.Free)
		return p, mech(m, p)
	}
	opened := func(t *testing.T, iv, ct []byte) {
		t.Helper()
		if bytes.Equal(iv, zero) || len(iv) != 12 {
			t.Fatalf("pIv after encryption = %x, want the HSM's random IV", iv)
		}
		if pt, err := gcm.Open(nil, iv, ct, aad); err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("the ciphertext is not under the IV written to pIv: %v", err)
		}
		if _, err := gcm.Open(nil, zero, ct, aad); err == nil {
			t.Fatal("the ciphertext is under the zero IV")
		}
	}

	t.Run("zeroed pIv is filled", func(t *testing.T) {
		seen := map[string]bool{}
		for i := range 2 {
			p, m := params(t, pkcs11.CKM_AES_GCM, zero)
			ct := x.crypt(t, true, m, key, msg)
			iv := p.IV()
			opened(t, iv, ct)
			if seen[string(iv)] {
				t.Fatalf("encryption %d: IV %x again", i, iv)
			}
			seen[string(iv)] = true
			_, m = params(t, pkcs11.CKM_AES_GCM, iv)
			if pt := x.crypt(t, false, m, key, ct); !bytes.Equal(pt, msg) {
				t.Fatalf("C_Decrypt with the returned IV = %q", pt)
			}

			p, m = params(t, pkcs11.CKM_AES_GCM, zero)
			ct = x.cryptParts(t, true, m, key, msg, 3, 20)
			iv = p.IV()
			opened(t, iv, ct)
			if seen[string(iv)] {
				t.Fatalf("multi-part encryption %d: IV %x again", i, iv)
			}
			seen[string(iv)] = true
			_, m = params(t, pkcs11.CKM_AES_GCM, iv)
			if pt := x.cryptParts(t, false, m, key, ct, 7); !bytes.Equal(pt, msg) {
				t.Fatalf("multi-part decrypt with the returned IV = %q", pt)
			}
		}
	})

	t.Run("zeroed pIv is filled by C_WrapKey", func(t *testing.T) {
		target := x.aesKey(t, true)
		p, m := params(t, pkcs11.CKM_AES_GCM, zero)
		w1, err := x.l.ctx.WrapKey(x.s, m, key, target) // miekg makes both calls of the two-call convention
		must(t, "C_WrapKey", err)
		iv1 := p.IV()
		p, m = params(t, pkcs11.CKM_AES_GCM, zero)
		w2, err := x.l.ctx.WrapKey(x.s, m, key, target)
		must(t, "C_WrapKey", err)
		if bytes.Equal(iv1, zero) || bytes.Equal(iv1, p.IV()) || bytes.Equal(w1, w2) {
			t.Fatalf("wraps under a zeroed pIv: IVs %x, %x", iv1, p.IV())
		}
		_, m = params(t, pkcs11.CKM_AES_GCM, iv1)
		back, err := x.l.ctx.UnwrapKey(x.s, m, key, w1, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true),
		})
		must(t, "C_UnwrapKey with the returned IV", err)
		x.sameAESKey(t, target, back)
	})

	t.Run("caller IV used as given", func(t *testing.T) {
		own := []byte("caller's IV!")
		p, m := params(t, pkcs11.CKM_AES_GCM, own)
		ct := x.crypt(t, true, m, key, msg)
		if !bytes.Equal(ct, gcm.Seal(nil, own, msg, aad)) {
			t.Fatal("C_Encrypt did not use the caller's IV")
		}
		if !bytes.Equal(p.IV(), own) {
			t.Fatalf("pIv changed to %x", p.IV())
		}
		p, m = params(t, pkcs11.CKM_AES_GCM, own)
		if ct := x.cryptParts(t, true, m, key, msg, 9); !bytes.Equal(ct, gcm.Seal(nil, own, msg, aad)) || !bytes.Equal(p.IV(), own) {
			t.Fatal("multi-part encryption did not use the caller's IV")
		}
		// Decryption under a zero IV is the caller's: unchanged.
		_, m = params(t, pkcs11.CKM_AES_GCM, zero)
		if pt := x.crypt(t, false, m, key, gcm.Seal(nil, zero, msg, aad)); !bytes.Equal(pt, msg) {
			t.Fatalf("C_Decrypt under the zero IV = %q", pt)
		}
		x.use(pkcs11.CKM_AES_GCM)
	})

	t.Run("CKM_CLOUDHSM_AES_GCM", func(t *testing.T) {
		var first []byte
		for _, iv := range [][]byte{nil, zero} { // pIv NULL, as CloudHSM documents, or zeroed
			p, m := params(t, ckmCloudHSMAESGCM, iv)
			ct := x.crypt(t, true, m, key, msg)
			if len(ct) != 12+len(msg)+16 {
				t.Fatalf("ciphertext of %d bytes, want IV || ciphertext || tag", len(ct))
			}
			opened(t, ct[:12], ct[12:])
			if iv != nil && !bytes.Equal(p.IV(), ct[:12]) {
				t.Fatalf("zeroed pIv = %x, want the leading IV %x", p.IV(), ct[:12])
			}
			if bytes.Equal(ct[:12], first) {
				t.Fatal("the same IV twice")
			}
			first = ct[:12]
			_, m = params(t, ckmCloudHSMAESGCM, iv)
			if pt := x.crypt(t, false, m, key, ct); !bytes.Equal(pt, msg) {
				t.Fatalf("C_Decrypt of IV || ciphertext = %q", pt)
			}
			_, m = params(t, ckmCloudHSMAESGCM, iv)
			ct = x.cryptParts(t, true, m, key, msg, 11)
			opened(t, ct[:12], ct[12:])
			_, m = params(t, ckmCloudHSMAESGCM, iv)
			if pt := x.cryptParts(t, false, m, key, ct, 5, 30); !bytes.Equal(pt, msg) {
				t.Fatalf("multi-part decrypt = %q", pt)
			}
		}
		// A caller's IV is refused, never used or silently replaced.
		_, m := params(t, ckmCloudHSMAESGCM, []byte("caller's IV!"))
		wantRV(t, "C_EncryptInit with a caller's IV", x.l.ctx.EncryptInit(x.s, m, key), pkcs11.CKR_MECHANISM_PARAM_INVALID)

		// Key wrapping: the wrapped key starts with the HSM's IV.
		target := x.aesKey(t, true)
		_, m = params(t, ckmCloudHSMAESGCM, nil)
		wrapped, err := x.l.ctx.WrapKey(x.s, m, key, target)
		must(t, "C_WrapKey", err)
		if len(wrapped) != 12+32+16 || bytes.Equal(wrapped[:12], zero) {
			t.Fatalf("wrapped key %x, want IV || wrapped key || tag", wrapped)
		}
		_, m = params(t, ckmCloudHSMAESGCM, nil)
		back, err := x.l.ctx.UnwrapKey(x.s, m, key, wrapped, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true),
		})
		must(t, "C_UnwrapKey", err)
		x.sameAESKey(t, target, back)
		x.use(ckmCloudHSMAESGCM)
	})
}
