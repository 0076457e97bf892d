package hsm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// gcmKey imports a known AES-256 key so that results can be checked with
// crypto/cipher.
func gcmKey(t *testing.T, td *testDevice, s SessionID) (ObjectID, cipher.AEAD) {
	t.Helper()
	raw := bytes.Repeat([]byte{0x42}, 32)
	id := must[ObjectID](t)(td.CreateObject(t.Context(), s, Template{
		Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)),
		Bytes(ck.CKA_VALUE, raw), Bool(ck.CKA_TOKEN, true), Bool(ck.CKA_ENCRYPT, true), Bool(ck.CKA_DECRYPT, true),
		Bool(ck.CKA_WRAP, true), Bool(ck.CKA_UNWRAP, true)}))
	b, _ := aes.NewCipher(raw)
	g, _ := cipher.NewGCM(b)
	return id, g
}

// encryptIVParts encrypts in a multi-part operation and returns the
// ciphertext and the IV the device reported.
func encryptIVParts(t *testing.T, td *testDevice, s SessionID, key ObjectID, m Mechanism, msg []byte) ([]byte, []byte) {
	t.Helper()
	op := must[OpID](t)(td.Begin(s, FnEncrypt, key, m))
	out := must[[]byte](t)(td.Update(s, op, msg[:5]))
	out = append(out, must[[]byte](t)(td.Update(s, op, msg[5:]))...)
	last, iv, err := td.FinishIV(s, op, nil)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, last...), iv
}

func TestGCMZeroIVGeneratedByDevice(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	key, g := gcmKey(t, td, alice)
	msg, aad := []byte("never under the zero IV"), []byte("aad")
	zero := Mechanism{Type: ck.CKM_AES_GCM, IV: make([]byte, 12), AAD: aad, TagBits: 128}

	seen := map[string]bool{}
	check := func(name string, ct, iv []byte) {
		t.Helper()
		if len(iv) != 12 || bytes.Equal(iv, make([]byte, 12)) {
			t.Fatalf("%s: IV %x, want 12 random bytes", name, iv)
		}
		if seen[string(iv)] {
			t.Fatalf("%s: IV %x used twice", name, iv)
		}
		seen[string(iv)] = true
		if pt, err := g.Open(nil, iv, ct, aad); err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("%s: ciphertext is not under the returned IV: %v", name, err)
		}
		if _, err := g.Open(nil, make([]byte, 12), ct, aad); err == nil {
			t.Fatalf("%s: ciphertext is under the zero IV", name)
		}
		m := zero
		m.IV = iv
		if pt, err := td.Decrypt(alice, key, m, ct); err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("%s: decrypt with the returned IV: %q %v", name, pt, err)
		}
	}
	for i := range 2 {
		ct, iv, err := td.EncryptIV(alice, key, zero, msg)
		if err != nil {
			t.Fatal(err)
		}
		check("single-part", ct, iv)
		ct, iv = encryptIVParts(t, td, alice, key, zero, msg)
		check("multi-part", ct, iv)
		_ = i
	}
	// A 96-bit tag takes the same path with the IV from the device's reader.
	short := zero
	short.TagBits = 96
	ct, iv, err := td.EncryptIV(alice, key, short, msg)
	if err != nil || len(iv) != 12 || bytes.Equal(iv, make([]byte, 12)) {
		t.Fatalf("96-bit tag: IV %x, %v", iv, err)
	}
	short.IV = iv
	if pt, err := td.Decrypt(alice, key, short, ct); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("96-bit tag: decrypt: %v", err)
	}

	// A caller's own IV is used as given, and reported as not generated.
	own := zero
	own.IV = []byte("caller-iv-12")
	ct, iv, err = td.EncryptIV(alice, key, own, msg)
	if err != nil || iv != nil {
		t.Fatalf("caller IV: iv %x, %v", iv, err)
	}
	if want := g.Seal(nil, own.IV, msg, aad); !bytes.Equal(ct, want) {
		t.Fatal("caller IV not used as given")
	}
	// Decryption under the zero IV is unchanged: the IV is the caller's.
	zct := g.Seal(nil, make([]byte, 12), msg, aad)
	if pt, err := td.Decrypt(alice, key, zero, zct); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("decrypt under a zero IV: %v", err)
	}
}

func TestGCMCloudHSMVendorMechanism(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	key, g := gcmKey(t, td, alice)
	msg, aad := []byte("IV in front"), []byte("aad")
	m := Mechanism{Type: ck.CKM_CLOUDHSM_AES_GCM, AAD: aad, TagBits: 128}

	for name, mm := range map[string]Mechanism{"pIv NULL": m, "zeroed pIv": {Type: m.Type, IV: make([]byte, 12), AAD: aad, TagBits: 128}} {
		ct, iv, err := td.EncryptIV(alice, key, mm, msg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(ct) != 12+len(msg)+16 || !bytes.Equal(ct[:12], iv) || bytes.Equal(iv, make([]byte, 12)) {
			t.Fatalf("%s: ciphertext %x does not start with the generated IV %x", name, ct, iv)
		}
		if pt, err := g.Open(nil, ct[:12], ct[12:], aad); err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("%s: not AES-GCM under the leading IV: %v", name, err)
		}
		if pt, err := td.Decrypt(alice, key, mm, ct); err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("%s: decrypt: %q %v", name, pt, err)
		}
		ct2, _ := encryptIVParts(t, td, alice, key, mm, msg)
		if bytes.Equal(ct2[:12], ct[:12]) {
			t.Fatalf("%s: the same IV twice", name)
		}
		if pt, err := td.Decrypt(alice, key, mm, ct2); err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("%s: decrypt of multi-part: %v", name, err)
		}
	}
	// A caller's IV is refused, never used or ignored.
	bad := m
	bad.IV = []byte("caller-iv-12")
	_, err := td.Encrypt(alice, key, bad, msg)
	wantErr(t, err, ErrMechanismParamInvalid)
	_, err = td.Begin(alice, FnEncrypt, key, bad)
	wantErr(t, err, ErrMechanismParamInvalid)
	_, err = td.Decrypt(alice, key, bad, make([]byte, 40))
	wantErr(t, err, ErrMechanismParamInvalid)
	_, err = td.Decrypt(alice, key, m, make([]byte, 11))
	wantErr(t, err, ErrEncryptedDataLen)
	tampered, _ := td.Encrypt(alice, key, m, msg)
	tampered[0] ^= 1 // the IV is authenticated through the tag
	_, err = td.Decrypt(alice, key, m, tampered)
	wantErr(t, err, ErrEncryptedDataInvalid)

	// Wrapping: the wrapped key starts with the device's IV.
	target := genAES(t, td, alice, "target", Bool(ck.CKA_EXTRACTABLE, true))
	w1 := must[[]byte](t)(td.WrapKey(alice, key, m, target))
	w2 := must[[]byte](t)(td.WrapKey(alice, key, m, target))
	if len(w1) != 12+32+16 || bytes.Equal(w1[:12], w2[:12]) {
		t.Fatalf("wrapped keys %x, %x: want fresh leading IVs", w1, w2)
	}
	id := must[ObjectID](t)(td.UnwrapKey(t.Context(), alice, key, m, w1,
		Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES))}))
	cmac := Mechanism{Type: ck.CKM_AES_CMAC}
	mac := must[[]byte](t)(td.Sign(alice, target, cmac, []byte("m")))
	if err := td.Verify(alice, id, cmac, []byte("m"), mac); err != nil {
		t.Fatalf("unwrapped key differs: %v", err)
	}
}

// TestGCMDeviceIVFIPSOnly uses GCM only under IVs the device chooses, which
// Go's FIPS 140-only mode allows (run it with GODEBUG=fips140=only too):
// AES keys are usable there and CKM_CLOUDHSM_AES_GCM round-trips.
func TestGCMDeviceIVFIPSOnly(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	key := genAES(t, td, alice, "fips")
	msg := []byte("FIPS 140-only")
	m := Mechanism{Type: ck.CKM_CLOUDHSM_AES_GCM, TagBits: 128}
	ct := must[[]byte](t)(td.Encrypt(alice, key, m, msg))
	if pt, err := td.Decrypt(alice, key, m, ct); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("decrypt: %q %v", pt, err)
	}
	_, iv, err := td.EncryptIV(alice, key, Mechanism{Type: ck.CKM_AES_GCM, IV: make([]byte, 12), TagBits: 128}, msg)
	if err != nil || len(iv) != 12 || bytes.Equal(iv, make([]byte, 12)) {
		t.Fatalf("zeroed IV: IV %x, %v", iv, err)
	}
	if fips140.Enforced() {
		_, err := td.Encrypt(alice, key, Mechanism{Type: ck.CKM_AES_GCM, IV: []byte("caller-iv-12"), TagBits: 128}, msg)
		wantErr(t, err, ErrMechanismParamInvalid)
	}
}

func TestGCMZeroIVWrap(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	kek, _ := gcmKey(t, td, alice)
	target := genAES(t, td, alice, "target", Bool(ck.CKA_EXTRACTABLE, true))
	zero := Mechanism{Type: ck.CKM_AES_GCM, IV: make([]byte, 12), TagBits: 128}
	w1, iv1, err := td.WrapKeyIV(alice, kek, zero, target)
	if err != nil {
		t.Fatal(err)
	}
	w2, iv2, err := td.WrapKeyIV(alice, kek, zero, target)
	if err != nil {
		t.Fatal(err)
	}
	if len(iv1) != 12 || bytes.Equal(iv1, make([]byte, 12)) || bytes.Equal(iv1, iv2) || bytes.Equal(w1, w2) {
		t.Fatalf("wraps under a zeroed IV: IVs %x, %x; want fresh random IVs", iv1, iv2)
	}
	// Unwrapping takes the IV given: the returned one.
	m := zero
	m.IV = iv1
	id := must[ObjectID](t)(td.UnwrapKey(t.Context(), alice, kek, m, w1,
		Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES))}))
	cmac := Mechanism{Type: ck.CKM_AES_CMAC}
	mac := must[[]byte](t)(td.Sign(alice, target, cmac, []byte("m")))
	if err := td.Verify(alice, id, cmac, []byte("m"), mac); err != nil {
		t.Fatalf("unwrapped key differs: %v", err)
	}
	// A caller's IV is used as given.
	m.IV = []byte("caller-iv-12")
	if _, iv, err := td.WrapKeyIV(alice, kek, m, target); err != nil || iv != nil {
		t.Fatalf("caller IV: iv %x, %v", iv, err)
	}
}
