package main

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"syscall"
	"testing"
	"unsafe"

	"github.com/miekg/pkcs11"

	"github.com/coffer-hsm/coffer/internal/ck"
	hmech "github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// CloudHSM's vendor wrap mechanisms as its applications pass them, and
// PKCS#11's CKM_RSA_AES_KEY_WRAP, which miekg/pkcs11 v1.1.1 does not name.
const (
	ckmAESWrapNoPad    = uint(ck.CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD)
	ckmAESWrapPKCS5Pad = uint(ck.CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD)
	ckmAESWrapZeroPad  = uint(ck.CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD)
	ckmRSAAESKeyWrap   = uint(ck.CKM_RSA_AES_KEY_WRAP)
)

// TestMiekgWrapKDF runs testWrapKDF on its own.
func TestMiekgWrapKDF(t *testing.T) {
	l := coffer(t)
	testWrapKDF(t, &mechTest{l: l, s: l.session(t), used: map[uint]bool{}})
}

// testWrapKDF drives the wrap and derive mechanisms CloudHSM applications
// use through the library: each wrap against the RFC construction computed
// outside the token, then back in; ECDH1 derive with every X9.63 KDF on
// both sides of an agreement, and against crypto/ecdh.
func testWrapKDF(t *testing.T, x *mechTest) {
	for _, m := range []uint{ckmAESWrapNoPad, ckmAESWrapPKCS5Pad, ckmAESWrapZeroPad, ckmRSAAESKeyWrap} {
		info, err := x.l.ctx.GetMechanismInfo(x.l.slot, mech(m, nil))
		must(t, "C_GetMechanismInfo", err)
		if info.Flags&(pkcs11.CKF_WRAP|pkcs11.CKF_UNWRAP) != pkcs11.CKF_WRAP|pkcs11.CKF_UNWRAP || info.Flags&(pkcs11.CKF_ENCRYPT|pkcs11.CKF_DECRYPT) != 0 {
			t.Errorf("mechanism %#x: flags %#x, want wrap and unwrap only", m, info.Flags)
		}
	}
	t.Run("AES", func(t *testing.T) { testCloudHSMAESWraps(t, x) })
	t.Run("RSA-AES", func(t *testing.T) { testRSAAESWrap(t, x) })
	t.Run("ECDH X9.63", func(t *testing.T) { testECDHKDF(t, x) })
}

// tokenSecret imports an extractable token secret key (destroyed at the end
// of the test): a token object is on every HSM, so any session key can wrap
// it.
func (x *mechTest) tokenSecret(t *testing.T, keyType uint, value []byte) pkcs11.ObjectHandle {
	t.Helper()
	h, err := x.l.ctx.CreateObject(x.s, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, keyType),
		attr(pkcs11.CKA_VALUE, value), attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_EXTRACTABLE, true),
		attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_SIGN, true),
	})
	must(t, "C_CreateObject token secret key", err)
	t.Cleanup(func() { _ = x.l.ctx.DestroyObject(x.s, h) })
	return h
}

var unwrapAES = []*pkcs11.Attribute{
	attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
	attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true),
}

func testCloudHSMAESWraps(t *testing.T, x *mechTest) {
	kekV := unhex("000102030405060708090a0b0c0d0e0f")
	kek := x.secret(t, pkcs11.CKK_AES, kekV)
	b, _ := aes.NewCipher(kekV)
	keyV := unhex("00112233445566778899aabbccddeeff")
	target := x.tokenSecret(t, pkcs11.CKK_AES, keyV)
	hmacV := bytes.Repeat([]byte{0x17}, 21) // a generic secret that is not a multiple of 8 bytes
	hmacKey := x.tokenSecret(t, pkcs11.CKK_GENERIC_SECRET, hmacV)

	pkcs5 := func(v []byte) []byte {
		n := 8 - len(v)%8
		return append(bytes.Clone(v), bytes.Repeat([]byte{byte(n)}, n)...)
	}
	for _, c := range []struct {
		name      string
		m         uint
		iv        []byte
		want      []byte
		anyLength bool
	}{
		{"NO_PAD RFC 3394 4.1", ckmAESWrapNoPad, nil, unhex("1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5"), false},
		{"NO_PAD default IV given", ckmAESWrapNoPad, bytes.Repeat([]byte{0xa6}, 8), unhex("1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5"), false},
		{"PKCS5_PAD", ckmAESWrapPKCS5Pad, nil, must2(t)(hmech.WrapKW(nil, b, nil, pkcs5(keyV))), true},
		{"ZERO_PAD", ckmAESWrapZeroPad, nil, must2(t)(hmech.WrapKWP(nil, b, nil, keyV)), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			wrapped, err := x.l.ctx.WrapKey(x.s, mech(c.m, c.iv), kek, target)
			must(t, "C_WrapKey", err)
			if !bytes.Equal(wrapped, c.want) {
				t.Fatalf("C_WrapKey = %x, want %x", wrapped, c.want)
			}
			back, err := x.l.ctx.UnwrapKey(x.s, mech(c.m, c.iv), kek, wrapped, unwrapAES)
			must(t, "C_UnwrapKey", err)
			block := []byte("0123456789abcdef")
			want := make([]byte, 16)
			kb, _ := aes.NewCipher(keyV)
			kb.Encrypt(want, block)
			if got := x.crypt(t, true, mech(pkcs11.CKM_AES_ECB, nil), back, block); !bytes.Equal(got, want) {
				t.Fatal("the unwrapped key is not the wrapped one")
			}
			wrapped[5] ^= 1
			_, err = x.l.ctx.UnwrapKey(x.s, mech(c.m, c.iv), kek, wrapped, unwrapAES)
			wantRV(t, "C_UnwrapKey of an altered key", err, pkcs11.CKR_WRAPPED_KEY_INVALID)

			// A 21-byte generic secret: the padded wraps carry it, NO_PAD cannot.
			hw, err := x.l.ctx.WrapKey(x.s, mech(c.m, c.iv), kek, hmacKey)
			if !c.anyLength {
				if err == nil {
					t.Fatal("NO_PAD wrapped a 21-byte key")
				}
			} else {
				must(t, "C_WrapKey generic secret", err)
				hb, err := x.l.ctx.UnwrapKey(x.s, mech(c.m, c.iv), kek, hw, []*pkcs11.Attribute{
					attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
					attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SENSITIVE, false), attr(pkcs11.CKA_EXTRACTABLE, true),
				})
				must(t, "C_UnwrapKey generic secret", err)
				if got := x.get(t, hb, pkcs11.CKA_VALUE); !bytes.Equal(got, hmacV) {
					t.Fatalf("unwrapped %x, want %x", got, hmacV)
				}
			}
			// Wrap-only: C_EncryptInit refuses the mechanism.
			wantRV(t, "C_EncryptInit", x.l.ctx.EncryptInit(x.s, mech(c.m, c.iv), kek), pkcs11.CKR_MECHANISM_INVALID)
			x.use(c.m)
		})
	}
	_, err := x.l.ctx.WrapKey(x.s, mech(ckmAESWrapNoPad, bytes.Repeat([]byte{0xa5}, 8)), kek, target)
	wantRV(t, "NO_PAD with another IV", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	_, err = x.l.ctx.WrapKey(x.s, mech(ckmAESWrapZeroPad, []byte{0xa6, 0x59, 0x59, 0xa6}), kek, target)
	wantRV(t, "ZERO_PAD with an IV", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	fixed, err := x.l.ctx.CreateObject(x.s, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		attr(pkcs11.CKA_VALUE, keyV), attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_EXTRACTABLE, false),
	})
	must(t, "C_CreateObject", err)
	t.Cleanup(func() { _ = x.l.ctx.DestroyObject(x.s, fixed) })
	_, err = x.l.ctx.WrapKey(x.s, mech(ckmAESWrapPKCS5Pad, nil), kek, fixed)
	wantRV(t, "C_WrapKey of a non-extractable key", err, pkcs11.CKR_KEY_UNEXTRACTABLE)
}

func must2(t *testing.T) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		must(t, "mech", err)
		return b
	}
}

// cMemory is memory outside Go's heap that the test lays C structures in,
// for parameters that hold pointers (miekg/pkcs11 copies a []byte
// parameter, but not what its pointers point to).
type cMemory struct{ b []byte }

func newCMemory(t *testing.T, n int) *cMemory {
	t.Helper()
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	must(t, "mmap", err)
	t.Cleanup(func() { _ = syscall.Munmap(b) })
	return &cMemory{b}
}

func (m *cMemory) addr(off int) uint64 { return uint64(uintptr(unsafe.Pointer(&m.b[off]))) }

// rsaAESParams lays out CK_RSA_AES_KEY_WRAP_PARAMS and the
// CK_RSA_PKCS_OAEP_PARAMS it points to (64-bit CK_ULONG and pointers).
func rsaAESParams(t *testing.T, bits, hash, mgf uint, label []byte) []byte {
	mem := newCMemory(t, 4096)
	ne := binary.NativeEndian
	oaep := mem.b[:40]
	ne.PutUint64(oaep[0:], uint64(hash))
	ne.PutUint64(oaep[8:], uint64(mgf))
	if label != nil {
		copy(mem.b[1024:], label)
		ne.PutUint64(oaep[16:], pkcs11.CKZ_DATA_SPECIFIED)
		ne.PutUint64(oaep[24:], mem.addr(1024))
		ne.PutUint64(oaep[32:], uint64(len(label)))
	}
	p := ne.AppendUint64(nil, uint64(bits))
	return ne.AppendUint64(p, mem.addr(0))
}

func testRSAAESWrap(t *testing.T, x *mechTest) {
	pub, priv, key := x.rsaPair(t)
	keyV := bytes.Repeat([]byte{0x3e}, 32)
	target := x.tokenSecret(t, pkcs11.CKK_AES, keyV)
	label := []byte("coffer")
	params := rsaAESParams(t, 256, pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, label)

	// Out of the token: the first modulus-size bytes are the OAEP wrapping
	// of a 256-bit AES key, the rest the RFC 5649 wrapping of the target
	// under it. That needs the private key, so the token's own public key
	// is checked by wrapping for a key pair the test holds.
	goKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, "RSA key", err)
	imported, err := x.l.ctx.CreateObject(x.s, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		attr(pkcs11.CKA_MODULUS, goKey.N.Bytes()), attr(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_WRAP, true),
	})
	must(t, "C_CreateObject RSA public key", err)
	wrapped, err := x.l.ctx.WrapKey(x.s, mech(ckmRSAAESKeyWrap, params), imported, target)
	must(t, "C_WrapKey RSA-AES", err)
	if len(wrapped) != 256+40 {
		t.Fatalf("wrapped %d bytes, want 296", len(wrapped))
	}
	tmp, err := rsa.DecryptOAEP(sha256.New(), nil, goKey, wrapped[:256], label)
	must(t, "OAEP-decrypt the temporary key", err)
	if len(tmp) != 32 {
		t.Fatalf("temporary AES key of %d bytes, want 32", len(tmp))
	}
	tb, _ := aes.NewCipher(tmp)
	if got, err := hmech.UnwrapKWP(nil, tb, nil, wrapped[256:]); err != nil || !bytes.Equal(got, keyV) {
		t.Fatalf("RFC 5649 layer: %x, %v", got, err)
	}

	// Into the token: a blob made outside it, for its own key pair.
	blob, err := hmech.WrapRSAAES(rand.Reader, key, hmech.RSAAESParams{AESKeyBits: 128,
		OAEP: hmech.OAEPParams{Hash: crypto.SHA1, MGF: crypto.SHA1}}, keyV)
	must(t, "wrap outside the token", err)
	p128 := rsaAESParams(t, 128, pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, nil)
	back, err := x.l.ctx.UnwrapKey(x.s, mech(ckmRSAAESKeyWrap, p128), priv, blob, unwrapAES)
	must(t, "C_UnwrapKey RSA-AES", err)
	block := []byte("0123456789abcdef")
	want := make([]byte, 16)
	kb, _ := aes.NewCipher(keyV)
	kb.Encrypt(want, block)
	if got := x.crypt(t, true, mech(pkcs11.CKM_AES_ECB, nil), back, block); !bytes.Equal(got, want) {
		t.Fatal("the unwrapped key is not the wrapped one")
	}
	// And a round trip through the token's own pair.
	w2, err := x.l.ctx.WrapKey(x.s, mech(ckmRSAAESKeyWrap, params), pub, target)
	must(t, "C_WrapKey RSA-AES", err)
	_, err = x.l.ctx.UnwrapKey(x.s, mech(ckmRSAAESKeyWrap, params), priv, w2, unwrapAES)
	must(t, "C_UnwrapKey RSA-AES", err)
	_, err = x.l.ctx.UnwrapKey(x.s, mech(ckmRSAAESKeyWrap, rsaAESParams(t, 256, pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, []byte("other"))), priv, w2, unwrapAES)
	wantRV(t, "C_UnwrapKey under another label", err, pkcs11.CKR_WRAPPED_KEY_INVALID)

	_, err = x.l.ctx.WrapKey(x.s, mech(ckmRSAAESKeyWrap, rsaAESParams(t, 100, pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, nil)), pub, target)
	wantRV(t, "ulAESKeyBits 100", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	_, err = x.l.ctx.WrapKey(x.s, mech(ckmRSAAESKeyWrap, []byte{1, 2, 3}), pub, target)
	wantRV(t, "malformed parameters", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	_, err = x.l.ctx.WrapKey(x.s, mech(ckmRSAAESKeyWrap, append(ulong(256), make([]byte, 8)...)), pub, target)
	wantRV(t, "NULL pOAEPParams", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	x.use(ckmRSAAESKeyWrap)
}

func testECDHKDF(t *testing.T, x *mechTest) {
	_, a, aKey := x.ecPair(t, curves[0].curve, curves[0].oid)
	_, b, bKey := x.ecPair(t, curves[0].curve, curves[0].oid)
	aPoint := must2(t)(aKey.Bytes()) //nolint:staticcheck // the uncompressed point CK_ECDH1_DERIVE_PARAMS takes
	bPoint := must2(t)(bKey.Bytes()) //nolint:staticcheck
	peer, err := ecdh.P256().GenerateKey(rand.Reader)
	must(t, "peer key", err)
	aECDH, err := aKey.ECDH()
	must(t, "ECDH public key", err)
	z, err := peer.ECDH(aECDH)
	must(t, "standard library ECDH", err)
	shared := []byte("CloudHSM X9.63 shared info")
	aesTmpl := []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_DECRYPT, true),
	}
	for _, k := range []struct {
		name string
		kdf  uint
		hash crypto.Hash
	}{
		{"SHA-1", pkcs11.CKD_SHA1_KDF, crypto.SHA1}, {"SHA-224", pkcs11.CKD_SHA224_KDF, crypto.SHA224},
		{"SHA-256", pkcs11.CKD_SHA256_KDF, crypto.SHA256}, {"SHA-384", pkcs11.CKD_SHA384_KDF, crypto.SHA384},
		{"SHA-512", pkcs11.CKD_SHA512_KDF, crypto.SHA512},
	} {
		t.Run(k.name, func(t *testing.T) {
			ka, err := x.l.ctx.DeriveKey(x.s, mech(pkcs11.CKM_ECDH1_DERIVE, pkcs11.NewECDH1DeriveParams(k.kdf, shared, bPoint)), a, aesTmpl)
			must(t, "C_DeriveKey A", err)
			kb, err := x.l.ctx.DeriveKey(x.s, mech(pkcs11.CKM_ECDH1_DERIVE, pkcs11.NewECDH1DeriveParams(k.kdf, shared, aPoint)), b, aesTmpl)
			must(t, "C_DeriveKey B", err)
			msg := []byte("sixteen byte msg")
			ct := x.crypt(t, true, mech(pkcs11.CKM_AES_ECB, nil), ka, msg)
			if pt := x.crypt(t, false, mech(pkcs11.CKM_AES_ECB, nil), kb, ct); !bytes.Equal(pt, msg) {
				t.Fatal("the two sides derived different keys")
			}
			open, err := x.l.ctx.DeriveKey(x.s, mech(pkcs11.CKM_ECDH1_DERIVE, pkcs11.NewECDH1DeriveParams(k.kdf, shared, peer.PublicKey().Bytes())), a,
				[]*pkcs11.Attribute{
					attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
					attr(pkcs11.CKA_VALUE_LEN, 70), attr(pkcs11.CKA_TOKEN, false),
					attr(pkcs11.CKA_SENSITIVE, false), attr(pkcs11.CKA_EXTRACTABLE, true),
				})
			must(t, "C_DeriveKey", err)
			want, err := hmech.X963KDF(k.hash, z, shared, 70)
			must(t, "X9.63 KDF", err)
			if got := x.get(t, open, pkcs11.CKA_VALUE); !bytes.Equal(got, want) {
				t.Fatalf("derived %x, want %x", got, want)
			}
		})
	}
	_, err = x.l.ctx.DeriveKey(x.s, mech(pkcs11.CKM_ECDH1_DERIVE, pkcs11.NewECDH1DeriveParams(pkcs11.CKD_SHA1_KDF_ASN1, nil, bPoint)), a, aesTmpl)
	wantRV(t, "CKD_SHA1_KDF_ASN1", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	x.use(pkcs11.CKM_ECDH1_DERIVE)
}
