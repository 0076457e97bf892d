package hsm

import (
	"bytes"
	"crypto"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

var (
	noPad    = Mechanism{Type: ck.CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD}
	pkcs5Pad = Mechanism{Type: ck.CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD}
	zeroPad  = Mechanism{Type: ck.CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD}
	rsaAES   = Mechanism{Type: ck.CKM_RSA_AES_KEY_WRAP, Hash: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA256, AESKeyBits: 256}
)

func unhexT(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// importAES makes a token AES key of the given value.
func importAES(t testing.TB, td *testDevice, s SessionID, v []byte, extra ...Attribute) ObjectID {
	t.Helper()
	return must[ObjectID](t)(td.CreateObject(t.Context(), s, with(secretAES, append([]Attribute{Bytes(ck.CKA_VALUE, v),
		Bool(ck.CKA_WRAP, true), Bool(ck.CKA_UNWRAP, true), Bool(ck.CKA_EXTRACTABLE, true)}, extra...)...)))
}

// The CloudHSM AES wraps give the RFC 3394 / RFC 5649 bytes: RFC 3394 §4.1
// for NO_PAD, the same with a block of PKCS #5 padding for PKCS5_PAD, and
// RFC 5649's construction for ZERO_PAD (each checked against package mech,
// whose functions the RFCs' vectors check).
func TestCloudHSMAESWrapKnownAnswers(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	kekV := unhexT(t, "000102030405060708090A0B0C0D0E0F")
	keyV := unhexT(t, "00112233445566778899AABBCCDDEEFF")
	kek := importAES(t, td, alice, kekV)
	target := importAES(t, td, alice, keyV)

	got := must[[]byte](t)(td.WrapKey(alice, kek, noPad, target))
	if want := unhexT(t, "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"); !bytes.Equal(got, want) {
		t.Fatalf("NO_PAD: %x, want RFC 3394 §4.1 %x", got, want)
	}
	explicit := Mechanism{Type: noPad.Type, IV: bytes.Repeat([]byte{0xA6}, 8)}
	if again := must[[]byte](t)(td.WrapKey(alice, kek, explicit, target)); !bytes.Equal(again, got) {
		t.Fatal("NO_PAD with the default IV given differs")
	}

	b := must[cipher.Block](t)(mech.NewAES(kekV))
	wantPKCS5 := must[[]byte](t)(mech.WrapKW(nil, b, nil, append(bytes.Clone(keyV), bytes.Repeat([]byte{8}, 8)...)))
	if got := must[[]byte](t)(td.WrapKey(alice, kek, pkcs5Pad, target)); !bytes.Equal(got, wantPKCS5) {
		t.Fatalf("PKCS5_PAD: %x, want %x", got, wantPKCS5)
	}
	wantKWP := must[[]byte](t)(mech.WrapKWP(nil, b, nil, keyV))
	if got := must[[]byte](t)(td.WrapKey(alice, kek, zeroPad, target)); !bytes.Equal(got, wantKWP) {
		t.Fatalf("ZERO_PAD: %x, want %x", got, wantKWP)
	}
}

// Each new wrap mechanism carries secret keys (and private keys where the
// padding allows any length) out and back.
func TestNewWrapsRoundTrip(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	ctx := t.Context()
	target := genAES(t, td, alice, "target")
	cmac := Mechanism{Type: ck.CKM_AES_CMAC}
	mac := must[[]byte](t)(td.Sign(alice, target, cmac, []byte("m")))
	digest := sha256.Sum256([]byte("m"))
	privTmpl := Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY))}
	for _, c := range []struct {
		name      string
		wrap, unw ObjectID
		m         Mechanism
		private   bool // the EC private key's PKCS#8 is not a multiple of 8 bytes
	}{
		{"NO_PAD", k.aes, k.aes, noPad, false},
		{"PKCS5_PAD", k.aes, k.aes, pkcs5Pad, true},
		{"ZERO_PAD", k.aes, k.aes, zeroPad, true},
		{"RSA_AES 128", k.rsaPub, k.rsaPriv, Mechanism{Type: ck.CKM_RSA_AES_KEY_WRAP, Hash: ck.CKM_SHA_1, MGF: ck.CKG_MGF1_SHA1, AESKeyBits: 128}, true},
		{"RSA_AES 256 label", k.rsaPub, k.rsaPriv, Mechanism{Type: ck.CKM_RSA_AES_KEY_WRAP, Hash: ck.CKM_SHA384, MGF: ck.CKG_MGF1_SHA384, Label: []byte("l"), AESKeyBits: 256}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			wrapped := must[[]byte](t)(td.WrapKey(alice, c.wrap, c.m, target))
			id := must[ObjectID](t)(td.UnwrapKey(ctx, alice, c.unw, c.m, wrapped, secretAES))
			if err := td.Verify(alice, id, cmac, []byte("m"), mac); err != nil {
				t.Fatalf("unwrapped key differs: %v", err)
			}
			if boolAttr(t, td, alice, id, ck.CKA_LOCAL) {
				t.Fatal("unwrapped key claims CKA_LOCAL")
			}
			wrapped[len(wrapped)-1] ^= 1
			_, err := td.UnwrapKey(ctx, alice, c.unw, c.m, wrapped, secretAES)
			wantErr(t, err, ErrWrappedKeyInvalid)

			if !c.private {
				_, err := td.WrapKey(alice, c.wrap, c.m, k.ecPriv)
				if err == nil {
					t.Fatal("NO_PAD wrapped a key that is not a multiple of 8 bytes")
				}
				return
			}
			wrapped = must[[]byte](t)(td.WrapKey(alice, c.wrap, c.m, k.ecPriv))
			pk := must[ObjectID](t)(td.UnwrapKey(ctx, alice, c.unw, c.m, wrapped, privTmpl))
			sig := must[[]byte](t)(td.Sign(alice, pk, Mechanism{Type: ck.CKM_ECDSA}, digest[:]))
			if err := td.Verify(alice, k.ecPub, Mechanism{Type: ck.CKM_ECDSA}, digest[:], sig); err != nil {
				t.Fatalf("unwrapped private key is not the original: %v", err)
			}
		})
	}
}

// The wrapping rules hold for the new mechanisms as for the old: the
// wrapping key's CKA_WRAP, the target's CKA_EXTRACTABLE and ownership,
// CKA_WRAP_WITH_TRUSTED, the mechanism's key type and parameters, and no
// use of a wrap-only mechanism for C_Encrypt or C_Decrypt.
func TestNewWrapsRefusals(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	k := makeKeys(t, td, alice)
	ctx := t.Context()
	noWrap := genAES(t, td, alice, "no wrap", Bool(ck.CKA_WRAP, false), Bool(ck.CKA_UNWRAP, false))
	fixed := genAES(t, td, alice, "fixed", Bool(ck.CKA_EXTRACTABLE, false))
	guarded := genAES(t, td, alice, "guarded", Bool(ck.CKA_WRAP_WITH_TRUSTED, true))
	shared := genAES(t, td, alice, "shared")
	noErr(t, td.ShareKey(ctx, alice, shared, "bob"))
	noErr(t, td.ShareKey(ctx, alice, k.aes, "bob"))
	target := genAES(t, td, alice, "target")

	for _, m := range []Mechanism{noPad, pkcs5Pad, zeroPad, rsaAES} {
		wk, uk := k.aes, k.aes
		if m.Type == ck.CKM_RSA_AES_KEY_WRAP {
			wk, uk = k.rsaPub, k.rsaPriv
		}
		t.Run(m.Type.String(), func(t *testing.T) {
			_, err := td.WrapKey(alice, wk, m, fixed)
			wantErr(t, err, ErrKeyNotExtractable)
			_, err = td.WrapKey(alice, wk, m, guarded)
			wantErr(t, err, ErrKeyNotWrappable)
			_, err = td.WrapKey(bob, k.aes, m, shared)
			wantErr(t, err, ErrNotOwner)
			_, err = td.Encrypt(alice, uk, m, make([]byte, 32))
			wantErr(t, err, ErrMechanismInvalid)
			_, err = td.Decrypt(alice, uk, m, make([]byte, 40))
			wantErr(t, err, ErrMechanismInvalid)
			if m.Type != ck.CKM_RSA_AES_KEY_WRAP {
				_, err = td.WrapKey(alice, noWrap, m, target)
				wantErr(t, err, ErrKeyFunctionDenied)
				_, err = td.UnwrapKey(ctx, alice, noWrap, m, make([]byte, 40), secretAES)
				wantErr(t, err, ErrKeyFunctionDenied)
				_, err = td.WrapKey(alice, k.rsaPub, m, target)
				wantErr(t, err, ErrWrappingKeyInvalid)
				bad := m
				bad.IV = bytes.Repeat([]byte{0xA5}, 8)
				_, err = td.WrapKey(alice, wk, bad, target)
				wantErr(t, err, ErrMechanismParamInvalid)
			} else {
				_, err = td.WrapKey(alice, k.aes, m, target)
				wantErr(t, err, ErrWrappingKeyInvalid)
				_, err = td.WrapKey(alice, k.rsaPriv, m, target)
				wantErr(t, err, ErrWrappingKeyInvalid)
				for _, bad := range []Mechanism{
					{Type: m.Type, Hash: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA256, AESKeyBits: 64},
					{Type: m.Type, Hash: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA256},
					{Type: m.Type, Hash: ck.CKM_MD5, MGF: ck.CKG_MGF1_SHA256, AESKeyBits: 128},
				} {
					_, err = td.WrapKey(alice, wk, bad, target)
					wantErr(t, err, ErrMechanismParamInvalid)
				}
			}
		})
	}
	// ZERO_PAD takes no IV at all (RFC 5649 computes it), not even its own.
	_, err := td.WrapKey(alice, k.aes, Mechanism{Type: zeroPad.Type, IV: []byte{0xA6, 0x59, 0x59, 0xA6}}, target)
	wantErr(t, err, ErrMechanismParamInvalid)
}

// A key wrapped under a trusted key with the new mechanisms comes back only
// as a CKA_WRAP_WITH_TRUSTED key, as with the others (one code path).
func TestNewWrapsKeepWrapWithTrusted(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	tkek := genAES(t, td, alice, "trusted kek")
	plain := genAES(t, td, alice, "plain kek")
	rsaPub, rsaPriv, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_RSA_PKCS_KEY_PAIR_GEN},
		Template{Bool(ck.CKA_TOKEN, true), Ulong(ck.CKA_MODULUS_BITS, 2048)}, Template{Bool(ck.CKA_TOKEN, true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []ObjectID{tkek, rsaPub} {
		noErr(t, td.SetAttributes(ctx, admin, id, Template{Bool(ck.CKA_TRUSTED, true)}))
	}
	guarded := genAES(t, td, alice, "guarded", Bool(ck.CKA_WRAP_WITH_TRUSTED, true))
	for _, c := range []struct {
		wrap, unw ObjectID
		m         Mechanism
	}{{tkek, tkek, noPad}, {tkek, tkek, pkcs5Pad}, {tkek, tkek, zeroPad}, {rsaPub, rsaPriv, rsaAES}} {
		t.Run(c.m.Type.String(), func(t *testing.T) {
			blob := must[[]byte](t)(td.WrapKey(alice, c.wrap, c.m, guarded))
			_, err := td.UnwrapKey(ctx, alice, c.unw, c.m, blob, with(secretAES, Bool(ck.CKA_WRAP_WITH_TRUSTED, false)))
			wantErr(t, err, ErrTemplateInconsistent)
			back := must[ObjectID](t)(td.UnwrapKey(ctx, alice, c.unw, c.m, blob, secretAES))
			if !boolAttr(t, td, alice, back, ck.CKA_WRAP_WITH_TRUSTED) {
				t.Fatal("unwrapped copy lost CKA_WRAP_WITH_TRUSTED")
			}
			_, err = td.WrapKey(alice, plain, c.m, back)
			if c.m.Type != ck.CKM_RSA_AES_KEY_WRAP {
				wantErr(t, err, ErrKeyNotWrappable)
			}
		})
	}
}

// ECDH1 derive with the X9.63 KDFs: both sides agree, the key is the KDF
// of the shared secret and the shared data (checked against crypto/ecdh and
// package mech, itself checked against NIST's vectors and OpenSSL), and the
// derived key's ALWAYS_SENSITIVE / NEVER_EXTRACTABLE follow the base key.
func TestECDHDeriveX963(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	a, aPoint := ecDeriver(t, td, alice)
	b, bPoint := ecDeriver(t, td, alice)
	peer, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	aesTmpl := Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Ulong(ck.CKA_VALUE_LEN, 32)}
	openTmpl := Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)), Ulong(ck.CKA_VALUE_LEN, 100),
		Bool(ck.CKA_SENSITIVE, false), Bool(ck.CKA_EXTRACTABLE, true)}
	shared := []byte("shared info")
	for kdf, h := range map[ck.KDF]crypto.Hash{ck.CKD_SHA1_KDF: crypto.SHA1, ck.CKD_SHA224_KDF: crypto.SHA224,
		ck.CKD_SHA256_KDF: crypto.SHA256, ck.CKD_SHA384_KDF: crypto.SHA384, ck.CKD_SHA512_KDF: crypto.SHA512} {
		ka := must[ObjectID](t)(td.DeriveKey(ctx, alice, a, Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: kdf, SharedData: shared, PublicData: bPoint}, aesTmpl))
		kb := must[ObjectID](t)(td.DeriveKey(ctx, alice, b, Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: kdf, SharedData: shared, PublicData: aPoint}, aesTmpl))
		ct := must[[]byte](t)(td.Encrypt(alice, ka, gcm12, []byte("agreed")))
		if pt, err := td.Decrypt(alice, kb, gcm12, ct); err != nil || string(pt) != "agreed" {
			t.Fatalf("KDF %d: derived keys differ: %v", kdf, err)
		}
		wantAS := boolAttr(t, td, alice, a, ck.CKA_ALWAYS_SENSITIVE) && boolAttr(t, td, alice, ka, ck.CKA_SENSITIVE)
		wantNE := boolAttr(t, td, alice, a, ck.CKA_NEVER_EXTRACTABLE) && !boolAttr(t, td, alice, ka, ck.CKA_EXTRACTABLE)
		if !wantAS || boolAttr(t, td, alice, ka, ck.CKA_ALWAYS_SENSITIVE) != wantAS || boolAttr(t, td, alice, ka, ck.CKA_NEVER_EXTRACTABLE) != wantNE {
			t.Fatalf("KDF %d: ALWAYS_SENSITIVE/NEVER_EXTRACTABLE do not follow the base key", kdf)
		}

		// Known answer against a peer whose private key the test holds.
		pt := peer.PublicKey().Bytes()
		kc := must[ObjectID](t)(td.DeriveKey(ctx, alice, a, Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: kdf, SharedData: shared, PublicData: pt}, openTmpl))
		aPub := must[*ecdh.PublicKey](t)(ecdh.P256().NewPublicKey(rawPoint(t, aPoint)))
		z := must[[]byte](t)(peer.ECDH(aPub))
		want := must[[]byte](t)(mech.X963KDF(h, z, shared, 100))
		if got := attr(t, td, alice, kc, ck.CKA_VALUE); !bytes.Equal(got, want) {
			t.Fatalf("KDF %d: %x, want %x", kdf, got, want)
		}
		if boolAttr(t, td, alice, kc, ck.CKA_ALWAYS_SENSITIVE) || boolAttr(t, td, alice, kc, ck.CKA_NEVER_EXTRACTABLE) {
			t.Fatalf("KDF %d: a non-sensitive extractable key claims ALWAYS_SENSITIVE or NEVER_EXTRACTABLE", kdf)
		}
	}

	for _, c := range []struct {
		name string
		m    Mechanism
		tmpl Template
		want *Kind
	}{
		{"unknown KDF", Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_SHA1_KDF_ASN1, PublicData: bPoint}, aesTmpl, ErrMechanismParamInvalid},
		{"CKD_NULL with shared data", Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_NULL, SharedData: shared, PublicData: bPoint}, aesTmpl, ErrMechanismParamInvalid},
		{"801 bytes", Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_SHA256_KDF, PublicData: bPoint},
			Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)), Ulong(ck.CKA_VALUE_LEN, 801)}, ErrTemplateInconsistent},
		{"AES of 20 bytes", Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_SHA256_KDF, PublicData: bPoint},
			Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Ulong(ck.CKA_VALUE_LEN, 20)}, ErrKeySizeRange},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := td.DeriveKey(ctx, alice, a, c.m, c.tmpl)
			wantErr(t, err, c.want)
		})
	}
	// A base key without CKA_DERIVE derives nothing, whatever the KDF.
	_, priv, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
		Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))}, Template{Bool(ck.CKA_DERIVE, false)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = td.DeriveKey(ctx, alice, priv, Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_SHA256_KDF, PublicData: bPoint}, aesTmpl)
	wantErr(t, err, ErrKeyFunctionDenied)
}

// rawPoint takes the uncompressed point out of a DER OCTET STRING.
func rawPoint(t testing.TB, der []byte) []byte {
	t.Helper()
	if len(der) < 2 || der[0] != 0x04 || int(der[1]) != len(der)-2 {
		t.Fatalf("not a short DER OCTET STRING: %x", der)
	}
	return der[2:]
}

// In FIPS mode the SHA-1 KDF is refused; the SHA-2 ones serve.
func TestECDHDeriveFIPSRefusesSHA1KDF(t *testing.T) {
	td, admin := activate(t, newDeviceWith(t, Config{FIPS: true}))
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	a, _ := ecDeriver(t, td, alice)
	_, bPoint := ecDeriver(t, td, alice)
	tmpl := Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Ulong(ck.CKA_VALUE_LEN, 32)}
	_, err := td.DeriveKey(ctx, alice, a, Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_SHA1_KDF, PublicData: bPoint}, tmpl)
	wantErr(t, err, ErrMechanismParamInvalid)
	if _, err := td.DeriveKey(ctx, alice, a, Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_SHA256_KDF, PublicData: bPoint}, tmpl); err != nil {
		t.Fatalf("SHA-256 KDF in FIPS mode: %v", err)
	}
	for _, m := range []ck.MechanismType{noPad.Type, pkcs5Pad.Type, zeroPad.Type, rsaAES.Type} {
		if _, err := td.MechanismInfo(m); err != nil {
			t.Errorf("%v not offered in FIPS mode: %v", m, err)
		}
	}
}

// Generic secrets run from 1 to 800 bytes, as CloudHSM's do.
func TestGenericSecret800(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	gen := func(n uint) (ObjectID, error) {
		return td.GenerateKey(ctx, alice, Mechanism{Type: ck.CKM_GENERIC_SECRET_KEY_GEN}, Template{Ulong(ck.CKA_VALUE_LEN, n)})
	}
	id := must[ObjectID](t)(gen(800))
	mac := must[[]byte](t)(td.Sign(alice, id, Mechanism{Type: ck.CKM_SHA256_HMAC}, []byte("m")))
	if err := td.Verify(alice, id, Mechanism{Type: ck.CKM_SHA256_HMAC}, []byte("m"), mac); err != nil {
		t.Fatal(err)
	}
	_, err := gen(801)
	wantErr(t, err, ErrKeySizeRange)
	_, err = td.CreateObject(ctx, alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)),
		Bytes(ck.CKA_VALUE, make([]byte, 801))})
	wantErr(t, err, ErrKeySizeRange)
	must[ObjectID](t)(td.CreateObject(ctx, alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)),
		Bytes(ck.CKA_VALUE, make([]byte, 800))}))
	info := must[MechanismInfo](t)(td.MechanismInfo(ck.CKM_GENERIC_SECRET_KEY_GEN))
	if info.MaxKeySize != 800 {
		t.Fatalf("CKM_GENERIC_SECRET_KEY_GEN max %d, want 800", info.MaxKeySize)
	}
}

// CKA_ALLOWED_MECHANISMS binds the new mechanisms as the others: a key
// allowed CKM_AES_KEY_WRAP only does not wrap with CloudHSM's NO_PAD (the
// same bytes), nor derive with the SP 800-108 KDF when only ECDH is listed.
func TestNewMechanismsHonourAllowedMechanisms(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	allowed := func(ms ...ck.MechanismType) Attribute {
		var v []byte
		for _, m := range ms {
			v = append(v, Ulong(0, uint(m)).Value...)
		}
		return Bytes(ck.CKA_ALLOWED_MECHANISMS, v)
	}
	kek := genAES(t, td, alice, "kek", allowed(ck.CKM_AES_KEY_WRAP))
	target := genAES(t, td, alice, "target")
	must[[]byte](t)(td.WrapKey(alice, kek, kw, target))
	for _, m := range []Mechanism{noPad, pkcs5Pad, zeroPad} {
		_, err := td.WrapKey(alice, kek, m, target)
		wantErr(t, err, ErrMechanismInvalid)
	}
	b := must[ObjectID](t)(td.GenerateKey(ctx, alice, Mechanism{Type: ck.CKM_GENERIC_SECRET_KEY_GEN},
		Template{Ulong(ck.CKA_VALUE_LEN, 32), Bool(ck.CKA_DERIVE, true), allowed(ck.CKM_ECDH1_DERIVE)}))
	_, err := td.DeriveKey(ctx, alice, b, kbkdfMech(ck.CKM_SHA256_HMAC), Template{Ulong(ck.CKA_VALUE_LEN, 32)})
	wantErr(t, err, ErrMechanismInvalid)
}
