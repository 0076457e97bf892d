package main

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestMiekgMechanisms drives every mechanism the token lists
// (C_GetMechanismList) through github.com/miekg/pkcs11, checking results
// against the standard library or published vectors, and fails if a listed
// mechanism went unused.
func TestMiekgMechanisms(t *testing.T) {
	l := coffer(t)
	list, err := l.ctx.GetMechanismList(l.slot)
	must(t, "C_GetMechanismList", err)
	x := &mechTest{l: l, s: l.session(t), used: map[uint]bool{}}
	for _, m := range list {
		info, err := l.ctx.GetMechanismInfo(l.slot, []*pkcs11.Mechanism{m})
		must(t, "C_GetMechanismInfo", err)
		if info.Flags&pkcs11.CKF_HW == 0 || info.Flags == pkcs11.CKF_HW {
			t.Errorf("mechanism %#x: flags %#x", m.Mechanism, info.Flags)
		}
		if slices.Contains(aesMechs, m.Mechanism) && (info.MinKeySize != 16 || info.MaxKeySize != 32) {
			t.Errorf("mechanism %#x: AES key sizes %d..%d, want 16..32 bytes", m.Mechanism, info.MinKeySize, info.MaxKeySize)
		}
	}
	_, err = l.ctx.GetMechanismInfo(l.slot, mech(pkcs11.CKM_DES3_CBC, nil))
	wantRV(t, "C_GetMechanismInfo(CKM_DES3_CBC)", err, pkcs11.CKR_MECHANISM_INVALID)

	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *mechTest)
	}{
		{"AES", testAES},
		{"AES key wrap", testAESKeyWrap},
		{"AES-GCM IVs", testGCMIV},
		{"CMAC", testCMAC},
		{"HMAC", testHMAC},
		{"digest", testDigest},
		{"RSA", testRSA},
		{"EC", testEC},
		{"Ed25519", testEd25519},
		{"ML-DSA", testMLDSA},
		{"ML-KEM", testMLKEM},
		{"random", testRandom},
		{"wrap and derive", testWrapKDF},
		{"SP 800-108", testSP800108},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, x) })
	}
	unused := 0
	for _, m := range list {
		if !x.used[m.Mechanism] {
			unused++
			t.Errorf("mechanism %#x is listed but no test used it", m.Mechanism)
		}
	}
	t.Logf("%d mechanisms listed, %d used", len(list), len(list)-unused)
}

var aesMechs = []uint{
	pkcs11.CKM_AES_KEY_GEN, pkcs11.CKM_AES_ECB, pkcs11.CKM_AES_CBC, pkcs11.CKM_AES_CBC_PAD, pkcs11.CKM_AES_CTR,
	pkcs11.CKM_AES_GCM, pkcs11.CKM_AES_KEY_WRAP, pkcs11.CKM_AES_KEY_WRAP_PAD, pkcs11.CKM_AES_CMAC, pkcs11.CKM_AES_CMAC_GENERAL,
	ckmCloudHSMAESGCM, ckmAESWrapNoPad, ckmAESWrapPKCS5Pad, ckmAESWrapZeroPad,
}

// mechTest is one session of the mechanism tests and the mechanisms they
// used successfully.
type mechTest struct {
	l    *loaded
	s    pkcs11.SessionHandle
	used map[uint]bool
}

func (x *mechTest) use(m uint) { x.used[m] = true }

// secret imports a secret key value as a session object usable for
// everything.
func (x *mechTest) secret(t *testing.T, keyType uint, value []byte) pkcs11.ObjectHandle {
	t.Helper()
	h, err := x.l.ctx.CreateObject(x.s, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, keyType),
		attr(pkcs11.CKA_VALUE, value), attr(pkcs11.CKA_TOKEN, false),
		attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_DECRYPT, true),
		attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_VERIFY, true),
		attr(pkcs11.CKA_WRAP, true), attr(pkcs11.CKA_UNWRAP, true),
	})
	must(t, "C_CreateObject secret key", err)
	return h
}

// aesKey generates an extractable AES-256 key, a token object (destroyed
// at the end of the test) or a session object.
func (x *mechTest) aesKey(t *testing.T, token bool) pkcs11.ObjectHandle {
	t.Helper()
	h, err := x.l.ctx.GenerateKey(x.s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, token), attr(pkcs11.CKA_EXTRACTABLE, true),
		attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_DECRYPT, true),
	})
	must(t, "C_GenerateKey AES", err)
	if token {
		t.Cleanup(func() { _ = x.l.ctx.DestroyObject(x.s, h) })
	}
	x.use(pkcs11.CKM_AES_KEY_GEN)
	return h
}

// sameAESKey checks that two AES keys encrypt a block alike (both can be
// sensitive, so values are not compared).
func (x *mechTest) sameAESKey(t *testing.T, a, b pkcs11.ObjectHandle) {
	t.Helper()
	block := []byte("0123456789abcdef")
	ea := x.crypt(t, true, mech(pkcs11.CKM_AES_ECB, nil), a, block)
	eb := x.crypt(t, true, mech(pkcs11.CKM_AES_ECB, nil), b, block)
	if !bytes.Equal(ea, eb) {
		t.Errorf("keys differ: E(block) %x vs %x", ea, eb)
	}
}

// crypt encrypts (or decrypts) in one part.
func (x *mechTest) crypt(t *testing.T, enc bool, m []*pkcs11.Mechanism, key pkcs11.ObjectHandle, in []byte) []byte {
	t.Helper()
	var (
		out []byte
		err error
	)
	if enc {
		must(t, "C_EncryptInit", x.l.ctx.EncryptInit(x.s, m, key))
		out, err = x.l.ctx.Encrypt(x.s, in)
		must(t, "C_Encrypt", err)
	} else {
		must(t, "C_DecryptInit", x.l.ctx.DecryptInit(x.s, m, key))
		out, err = x.l.ctx.Decrypt(x.s, in)
		must(t, "C_Decrypt", err)
	}
	return out
}

// cryptParts encrypts (or decrypts) in parts cut at the given offsets.
func (x *mechTest) cryptParts(t *testing.T, enc bool, m []*pkcs11.Mechanism, key pkcs11.ObjectHandle, in []byte, cuts ...int) []byte {
	t.Helper()
	init, update, final := x.l.ctx.DecryptInit, x.l.ctx.DecryptUpdate, x.l.ctx.DecryptFinal
	if enc {
		init, update, final = x.l.ctx.EncryptInit, x.l.ctx.EncryptUpdate, x.l.ctx.EncryptFinal
	}
	must(t, "C_*Init", init(x.s, m, key))
	var out []byte
	prev := 0
	for _, c := range append(cuts, len(in)) {
		part, err := update(x.s, in[prev:c])
		must(t, "C_*Update", err)
		out = append(out, part...)
		prev = c
	}
	last, err := final(x.s)
	must(t, "C_*Final", err)
	return append(out, last...)
}

// sign signs in one part (parts nil) or in the given parts, and verifies
// the signature through the token in one part and in parts.
func (x *mechTest) sign(t *testing.T, m []*pkcs11.Mechanism, key, pub pkcs11.ObjectHandle, data []byte, multi bool) []byte {
	t.Helper()
	must(t, "C_SignInit", x.l.ctx.SignInit(x.s, m, key))
	var (
		sig []byte
		err error
	)
	if multi {
		half := len(data) / 2
		must(t, "C_SignUpdate", x.l.ctx.SignUpdate(x.s, data[:half]))
		must(t, "C_SignUpdate", x.l.ctx.SignUpdate(x.s, data[half:]))
		sig, err = x.l.ctx.SignFinal(x.s)
		must(t, "C_SignFinal", err)
	} else {
		sig, err = x.l.ctx.Sign(x.s, data)
		must(t, "C_Sign", err)
	}
	must(t, "C_VerifyInit", x.l.ctx.VerifyInit(x.s, m, pub))
	must(t, "C_Verify", x.l.ctx.Verify(x.s, data, sig))
	if multi {
		must(t, "C_VerifyInit", x.l.ctx.VerifyInit(x.s, m, pub))
		must(t, "C_VerifyUpdate", x.l.ctx.VerifyUpdate(x.s, data))
		must(t, "C_VerifyFinal", x.l.ctx.VerifyFinal(x.s, sig))
	}
	bad := bytes.Clone(sig)
	bad[len(bad)-1] ^= 1
	must(t, "C_VerifyInit", x.l.ctx.VerifyInit(x.s, m, pub))
	wantRV(t, "C_Verify of a altered signature", x.l.ctx.Verify(x.s, data, bad), pkcs11.CKR_SIGNATURE_INVALID)
	return sig
}

// ulong encodes a CK_ULONG mechanism parameter.
func ulong(v uint) []byte { return binary.NativeEndian.AppendUint64(nil, uint64(v)) }

func testRandom(t *testing.T, x *mechTest) {
	a, err := x.l.ctx.GenerateRandom(x.s, 100)
	must(t, "C_GenerateRandom", err)
	b, err := x.l.ctx.GenerateRandom(x.s, 100)
	must(t, "C_GenerateRandom", err)
	if len(a) != 100 || bytes.Equal(a, b) || bytes.Equal(a, make([]byte, 100)) {
		t.Fatalf("random: %x then %x", a, b)
	}
	big, err := x.l.ctx.GenerateRandom(x.s, 100<<10) // more than one request
	must(t, "C_GenerateRandom 100 KiB", err)
	if bytes.Equal(big[len(big)-64:], make([]byte, 64)) {
		t.Fatal("random: the end of a long request is zero")
	}
	wantRV(t, "C_SeedRandom", x.l.ctx.SeedRandom(x.s, []byte("seed")), pkcs11.CKR_RANDOM_SEED_NOT_SUPPORTED)
}
