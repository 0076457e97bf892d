package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"slices"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

func p256() elliptic.Curve { return elliptic.P256() }

// keys is a crypto user's set of keys of every kind, made once per test.
type keys struct {
	aes, hmac         ObjectID
	rsaPub, rsaPriv   ObjectID
	ecPub, ecPriv     ObjectID
	p384Pub, p384Priv ObjectID
	p521Pub, p521Priv ObjectID
	edPub, edPriv     ObjectID
}

func makeKeys(t testing.TB, td *testDevice, s SessionID) keys {
	t.Helper()
	ctx := t.Context()
	var k keys
	var err error
	k.aes = genAES(t, td, s, "aes")
	k.hmac, err = td.GenerateKey(ctx, s, Mechanism{Type: ck.CKM_GENERIC_SECRET_KEY_GEN}, Template{Ulong(ck.CKA_VALUE_LEN, 32), Bool(ck.CKA_TOKEN, true)})
	if err != nil {
		t.Fatal(err)
	}
	pair := func(m ck.MechanismType, pub Template) (ObjectID, ObjectID) {
		p, q, err := td.GenerateKeyPair(ctx, s, Mechanism{Type: m}, append(pub, Bool(ck.CKA_TOKEN, true)), Template{Bool(ck.CKA_TOKEN, true)})
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		return p, q
	}
	k.rsaPub, k.rsaPriv = pair(ck.CKM_RSA_PKCS_KEY_PAIR_GEN, Template{Ulong(ck.CKA_MODULUS_BITS, 2048)})
	k.ecPub, k.ecPriv = pair(ck.CKM_EC_KEY_PAIR_GEN, Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))})
	k.p384Pub, k.p384Priv = pair(ck.CKM_EC_KEY_PAIR_GEN, Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P384()))})
	k.p521Pub, k.p521Priv = pair(ck.CKM_EC_KEY_PAIR_GEN, Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P521()))})
	k.edPub, k.edPriv = pair(ck.CKM_EC_EDWARDS_KEY_PAIR_GEN, nil)
	return k
}

func TestCipherRoundTrips(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	iv := bytes.Repeat([]byte{7}, 16)
	msg := bytes.Repeat([]byte("coffer!!"), 40) // 320 bytes: a block multiple, and a KW multiple
	for _, c := range []struct {
		name     string
		enc, dec ObjectID
		m        Mechanism
		msg      []byte
	}{
		{"AES-ECB", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_ECB}, msg},
		{"AES-CBC", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_CBC, IV: iv}, msg},
		{"AES-CBC-PAD", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_CBC_PAD, IV: iv}, msg[:77]},
		{"AES-CTR", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_CTR, IV: iv, CounterBits: 32}, msg[:77]},
		{"AES-GCM", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_GCM, IV: iv[:12], AAD: []byte("aad"), TagBits: 128}, msg[:77]},
		{"AES-GCM 96-bit tag", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_GCM, IV: iv[:12], TagBits: 96}, msg[:77]},
		{"AES-KW", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_KEY_WRAP}, msg[:32]},
		{"AES-KWP", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, msg[:21]},
		{"RSA-PKCS", k.rsaPub, k.rsaPriv, Mechanism{Type: ck.CKM_RSA_PKCS}, msg[:100]},
		{"RSA-OAEP", k.rsaPub, k.rsaPriv, Mechanism{Type: ck.CKM_RSA_PKCS_OAEP, Hash: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA256, Label: []byte("l")}, msg[:100]},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct, err := td.Encrypt(alice, c.enc, c.m, c.msg)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := td.Decrypt(alice, c.dec, c.m, ct)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, c.msg) {
				t.Fatal("round trip changed the message")
			}
			// Multi-part gives the same result as single-part, fed unevenly.
			if c.m.Type == ck.CKM_RSA_PKCS || c.m.Type == ck.CKM_RSA_PKCS_OAEP {
				return // randomized
			}
			op, err := td.Begin(alice, FnEncrypt, c.enc, c.m)
			if err != nil {
				t.Fatal(err)
			}
			var out []byte
			for _, part := range [][]byte{c.msg[:5], c.msg[5:17], c.msg[17:]} {
				o, err := td.Update(alice, op, part)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, o...)
			}
			last, err := td.Finish(alice, op, nil)
			if err != nil {
				t.Fatal(err)
			}
			if out = append(out, last...); !bytes.Equal(out, ct) {
				t.Fatal("multi-part ciphertext differs from single-part")
			}
		})
	}
}

func TestSignRoundTrips(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	msg := []byte("the quick brown fox")
	digest := sha256.Sum256(msg)
	digestInfo := append([]byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}, digest[:]...)
	pss := func(m, h ck.MechanismType, mgf ck.MGF) Mechanism {
		return Mechanism{Type: m, Hash: h, MGF: mgf, SaltLen: 32}
	}
	for _, c := range []struct {
		name      string
		sign, ver ObjectID
		m         Mechanism
		data      []byte
		multi     bool
	}{
		{"AES-CMAC", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_CMAC}, msg, true},
		{"AES-CMAC-GENERAL", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_CMAC_GENERAL, MACLen: 8}, msg, true},
		{"HMAC-SHA1", k.hmac, k.hmac, Mechanism{Type: ck.CKM_SHA_1_HMAC}, msg, true},
		{"HMAC-SHA224", k.hmac, k.hmac, Mechanism{Type: ck.CKM_SHA224_HMAC}, msg, true},
		{"HMAC-SHA256", k.hmac, k.hmac, Mechanism{Type: ck.CKM_SHA256_HMAC}, msg, true},
		{"HMAC-SHA384", k.hmac, k.hmac, Mechanism{Type: ck.CKM_SHA384_HMAC}, msg, true},
		{"HMAC-SHA512", k.hmac, k.hmac, Mechanism{Type: ck.CKM_SHA512_HMAC}, msg, true},
		{"HMAC-SHA256-GENERAL", k.hmac, k.hmac, Mechanism{Type: ck.CKM_SHA256_HMAC_GENERAL, MACLen: 16}, msg, true},
		{"RSA-PKCS raw", k.rsaPriv, k.rsaPub, Mechanism{Type: ck.CKM_RSA_PKCS}, digestInfo, false},
		{"SHA256-RSA-PKCS", k.rsaPriv, k.rsaPub, Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, msg, true},
		{"SHA512-RSA-PKCS", k.rsaPriv, k.rsaPub, Mechanism{Type: ck.CKM_SHA512_RSA_PKCS}, msg, true},
		{"RSA-PSS raw", k.rsaPriv, k.rsaPub, pss(ck.CKM_RSA_PKCS_PSS, ck.CKM_SHA256, ck.CKG_MGF1_SHA256), digest[:], false},
		{"SHA256-RSA-PSS", k.rsaPriv, k.rsaPub, pss(ck.CKM_SHA256_RSA_PKCS_PSS, ck.CKM_SHA256, ck.CKG_MGF1_SHA256), msg, true},
		{"ECDSA raw", k.ecPriv, k.ecPub, Mechanism{Type: ck.CKM_ECDSA}, digest[:], false},
		{"ECDSA-SHA256", k.ecPriv, k.ecPub, Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg, true},
		{"ECDSA-SHA384 P-384", k.p384Priv, k.p384Pub, Mechanism{Type: ck.CKM_ECDSA_SHA384}, msg, true},
		{"ECDSA-SHA512 P-521", k.p521Priv, k.p521Pub, Mechanism{Type: ck.CKM_ECDSA_SHA512}, msg, true},
		{"EdDSA", k.edPriv, k.edPub, Mechanism{Type: ck.CKM_EDDSA}, msg, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			sig, err := td.Sign(alice, c.sign, c.m, c.data)
			if err != nil {
				t.Fatal(err)
			}
			if err := td.Verify(alice, c.ver, c.m, c.data, sig); err != nil {
				t.Fatal(err)
			}
			bad := bytes.Clone(sig)
			bad[len(bad)/2] ^= 1
			wantErr(t, td.Verify(alice, c.ver, c.m, c.data, bad), ErrSignatureInvalid)
			if !c.multi {
				return
			}
			op, err := td.Begin(alice, FnVerify, c.ver, c.m)
			if err != nil {
				t.Fatal(err)
			}
			for _, part := range [][]byte{c.data[:3], c.data[3:]} {
				if _, err := td.Update(alice, op, part); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := td.Finish(alice, op, sig); err != nil {
				t.Fatalf("multi-part verify: %v", err)
			}
		})
	}
}

// Signatures made on the device verify with Go's own crypto on the
// exported public key, and the other way round.
func TestInteropWithStandardLibrary(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	msg := []byte("interop")
	digest := sha256.Sum256(msg)
	pubOf := func(id ObjectID) any {
		der := must[[]byte](t)(td.ExportPublicKey(alice, id))
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	sig := must[[]byte](t)(td.Sign(alice, k.rsaPriv, Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, msg))
	if err := rsa.VerifyPKCS1v15(pubOf(k.rsaPub).(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("RSA: %v", err)
	}
	sig = must[[]byte](t)(td.Sign(alice, k.edPriv, Mechanism{Type: ck.CKM_EDDSA}, msg))
	if !ed25519.Verify(pubOf(k.edPub).(ed25519.PublicKey), msg, sig) {
		t.Fatal("Ed25519 signature does not verify")
	}
	sig = must[[]byte](t)(td.Sign(alice, k.ecPriv, Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg))
	if len(sig) != 64 {
		t.Fatalf("ECDSA P-256 signature is %d bytes, want r||s of 64", len(sig))
	}

	// Import a key made outside and use it.
	ext, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ext)
	id := must[ObjectID](t)(td.ImportPrivateKey(t.Context(), alice, der, Template{String(ck.CKA_LABEL, "imported")}))
	sig = must[[]byte](t)(td.Sign(alice, id, Mechanism{Type: ck.CKM_ECDSA}, digest[:]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&ext.PublicKey, digest[:], r, s) {
		t.Fatal("imported key's signature does not verify")
	}
	if got := attr(t, td, alice, id, ck.CKA_LOCAL); got[0] != 0 {
		t.Fatal("imported key claims CKA_LOCAL")
	}
	spki, _ := x509.MarshalPKIXPublicKey(&ext.PublicKey)
	pid := must[ObjectID](t)(td.ImportPublicKey(t.Context(), alice, spki, nil))
	if err := td.Verify(alice, pid, Mechanism{Type: ck.CKM_ECDSA}, digest[:], sig); err != nil {
		t.Fatal(err)
	}
}

func TestDigest(t *testing.T) {
	td := newTestDevice(t)
	s := td.OpenSession()
	for m, h := range map[ck.MechanismType]crypto.Hash{ck.CKM_SHA_1: crypto.SHA1, ck.CKM_SHA224: crypto.SHA224,
		ck.CKM_SHA256: crypto.SHA256, ck.CKM_SHA384: crypto.SHA384, ck.CKM_SHA512: crypto.SHA512} {
		got := must[[]byte](t)(td.Digest(s, Mechanism{Type: m}, []byte("abc")))
		hh := h.New()
		hh.Write([]byte("abc"))
		if !bytes.Equal(got, hh.Sum(nil)) {
			t.Errorf("%v differs from the standard library", m)
		}
	}
	_, err := td.Digest(s, Mechanism{Type: ck.CKM_AES_ECB}, nil)
	wantErr(t, err, ErrMechanismInvalid)
}

func TestCryptoRefusals(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	ctx := t.Context()
	noSign := genAES(t, td, alice, "nosign", Bool(ck.CKA_SIGN, false))
	gcm := Mechanism{Type: ck.CKM_AES_GCM, IV: []byte("caller-iv-12"), TagBits: 128}
	ct := must[[]byte](t)(td.Encrypt(alice, k.aes, gcm, []byte("secret")))
	ct[0] ^= 1

	for _, c := range []struct {
		name string
		err  error
		want *Kind
	}{
		{"wrong key type", func() error {
			_, err := td.Sign(alice, k.aes, Mechanism{Type: ck.CKM_ECDSA}, make([]byte, 32))
			return err
		}(), ErrKeyTypeInconsistent},
		{"public key signs", func() error {
			_, err := td.Sign(alice, k.ecPub, Mechanism{Type: ck.CKM_ECDSA}, make([]byte, 32))
			return err
		}(), ErrKeyTypeInconsistent},
		{"attribute forbids", func() error { _, err := td.Sign(alice, noSign, Mechanism{Type: ck.CKM_AES_CMAC}, nil); return err }(), ErrKeyFunctionDenied},
		{"unknown mechanism", func() error { _, err := td.Sign(alice, k.aes, Mechanism{Type: ck.CKM_AES_XCBC_MAC}, nil); return err }(), ErrMechanismInvalid},
		{"tampered GCM", func() error { _, err := td.Decrypt(alice, k.aes, gcm, ct); return err }(), ErrEncryptedDataInvalid},
		{"CBC not block multiple", func() error {
			_, err := td.Encrypt(alice, k.aes, Mechanism{Type: ck.CKM_AES_CBC, IV: make([]byte, 16)}, []byte("short"))
			return err
		}(), ErrDataLenRange},
		{"CBC bad IV", func() error {
			_, err := td.Encrypt(alice, k.aes, Mechanism{Type: ck.CKM_AES_CBC, IV: make([]byte, 3)}, make([]byte, 16))
			return err
		}(), ErrMechanismParamInvalid},
		{"PSS MGF mismatch", func() error {
			_, err := td.Sign(alice, k.rsaPriv, Mechanism{Type: ck.CKM_SHA256_RSA_PKCS_PSS, Hash: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA1, SaltLen: 32}, []byte("m"))
			return err
		}(), ErrMechanismParamInvalid},
		// r||s may be shorter than 2 x 32 bytes (PKCS#11 §2.3.1), but not odd or longer.
		{"ECDSA odd-length signature", td.Verify(alice, k.ecPub, Mechanism{Type: ck.CKM_ECDSA}, make([]byte, 32), make([]byte, 9)), ErrSignatureLenRange},
		{"ECDSA long signature", td.Verify(alice, k.ecPub, Mechanism{Type: ck.CKM_ECDSA}, make([]byte, 32), make([]byte, 66)), ErrSignatureLenRange},
		{"ECDSA short zero signature", td.Verify(alice, k.ecPub, Mechanism{Type: ck.CKM_ECDSA}, make([]byte, 32), make([]byte, 10)), ErrSignatureInvalid},
		{"unknown key", func() error { _, err := td.Sign(alice, 12345, Mechanism{Type: ck.CKM_AES_CMAC}, nil); return err }(), ErrKeyHandleInvalid},
		{"operation not initialized", func() error { _, err := td.Update(alice, 777, nil); return err }(), ErrOperationNotInit},
		{"RSA-1024 pair", func() error {
			_, _, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_RSA_PKCS_KEY_PAIR_GEN}, Template{Ulong(ck.CKA_MODULUS_BITS, 1024)}, nil)
			return err
		}(), ErrKeySizeRange},
		{"EC without curve", func() error {
			_, _, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN}, nil, nil)
			return err
		}(), ErrTemplateIncomplete},
	} {
		t.Run(c.name, func(t *testing.T) { wantErr(t, c.err, c.want) })
	}

}

// TestSessionRunsOperationsSideBySide: one session runs several operations
// of one function at once, each to its own result (the PKCS#11 module
// carries all sessions of a slot in one node session), up to
// MaxSessionOperations; Final and Abort make room again.
func TestSessionRunsOperationsSideBySide(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	key := genAES(t, td, alice, "aes")
	cmac := Mechanism{Type: ck.CKM_AES_CMAC}
	a := must[OpID](t)(td.Begin(alice, FnSign, key, cmac))
	b := must[OpID](t)(td.Begin(alice, FnSign, key, cmac))
	must[[]byte](t)(td.Update(alice, a, []byte("first ")))
	must[[]byte](t)(td.Update(alice, b, []byte("second ")))
	must[[]byte](t)(td.Update(alice, a, []byte("message")))
	must[[]byte](t)(td.Update(alice, b, []byte("message")))
	macB := must[[]byte](t)(td.Finish(alice, b, nil))
	macA := must[[]byte](t)(td.Finish(alice, a, nil))
	if want := must[[]byte](t)(td.Sign(alice, key, cmac, []byte("first message"))); !bytes.Equal(macA, want) {
		t.Errorf("first operation's MAC %x, want %x", macA, want)
	}
	if want := must[[]byte](t)(td.Sign(alice, key, cmac, []byte("second message"))); !bytes.Equal(macB, want) {
		t.Errorf("second operation's MAC %x, want %x", macB, want)
	}

	ops := make([]OpID, MaxSessionOperations)
	for i := range ops {
		ops[i] = must[OpID](t)(td.Begin(alice, FnDigest, 0, Mechanism{Type: ck.CKM_SHA256}))
	}
	_, err := td.Begin(alice, FnSign, key, cmac)
	wantErr(t, err, ErrTooManyOperations)
	if err := td.Abort(alice, ops[0]); err != nil {
		t.Fatal(err)
	}
	ops[0] = must[OpID](t)(td.Begin(alice, FnSign, key, cmac))
	_, err = td.Begin(alice, FnDigest, 0, Mechanism{Type: ck.CKM_SHA256})
	wantErr(t, err, ErrTooManyOperations)
	must[[]byte](t)(td.Finish(alice, ops[0], nil))
	must[OpID](t)(td.Begin(alice, FnDigest, 0, Mechanism{Type: ck.CKM_SHA256}))
}

// TestDeviceOperationsBounded: the operations of all sessions together are
// bounded too, and those a closed session or a logout drops are counted
// out.
func TestDeviceOperationsBounded(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	td.ops.max = 4
	sha := Mechanism{Type: ck.CKM_SHA256}
	for range 3 {
		must[OpID](t)(td.Begin(alice, FnDigest, 0, sha))
	}
	op := must[OpID](t)(td.Begin(bob, FnDigest, 0, sha))
	_, err := td.Begin(bob, FnDigest, 0, sha)
	wantErr(t, err, ErrTooManyOperations)
	must[[]byte](t)(td.Finish(bob, op, nil))
	op = must[OpID](t)(td.Begin(bob, FnDigest, 0, sha))
	if err := td.Abort(bob, op); err != nil {
		t.Fatal(err)
	}
	must[OpID](t)(td.Begin(bob, FnDigest, 0, sha))
	if err := td.CloseSession(alice); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		must[OpID](t)(td.Begin(bob, FnDigest, 0, sha))
	}
	_, err = td.Begin(bob, FnDigest, 0, sha)
	wantErr(t, err, ErrTooManyOperations)
	if err := td.Logout(bob); err != nil {
		t.Fatal(err)
	}
	if n := td.ops.n.Load(); n != 0 {
		t.Fatalf("%d operations counted after the logout, want 0", n)
	}
}

func TestWrapUnwrap(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	ctx := t.Context()
	target := genAES(t, td, alice, "target")
	cmac := Mechanism{Type: ck.CKM_AES_CMAC}
	mac := must[[]byte](t)(td.Sign(alice, target, cmac, []byte("m")))
	secretTmpl := Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Bool(ck.CKA_TOKEN, true)}
	oaep := Mechanism{Type: ck.CKM_RSA_PKCS_OAEP, Hash: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA256}

	for _, c := range []struct {
		name      string
		wrap, unw ObjectID
		m         Mechanism
	}{
		{"AES-KW", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_KEY_WRAP}},
		{"AES-KWP", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}},
		{"AES-GCM", k.aes, k.aes, Mechanism{Type: ck.CKM_AES_GCM, IV: []byte("caller-iv-12"), TagBits: 128}},
		{"RSA-OAEP", k.rsaPub, k.rsaPriv, oaep},
	} {
		t.Run(c.name, func(t *testing.T) {
			wrapped := must[[]byte](t)(td.WrapKey(alice, c.wrap, c.m, target))
			id := must[ObjectID](t)(td.UnwrapKey(ctx, alice, c.unw, c.m, wrapped, secretTmpl))
			if err := td.Verify(alice, id, cmac, []byte("m"), mac); err != nil {
				t.Fatalf("unwrapped key differs: %v", err)
			}
			if got := attr(t, td, alice, id, ck.CKA_LOCAL); got[0] != 0 {
				t.Fatal("unwrapped key claims CKA_LOCAL")
			}
			wrapped[len(wrapped)-1] ^= 1
			_, err := td.UnwrapKey(ctx, alice, c.unw, c.m, wrapped, secretTmpl)
			wantErr(t, err, ErrWrappedKeyInvalid)
		})
	}

	// A private key travels as PKCS#8 under KWP.
	wrapped := must[[]byte](t)(td.WrapKey(alice, k.aes, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, k.ecPriv))
	id := must[ObjectID](t)(td.UnwrapKey(ctx, alice, k.aes, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, wrapped,
		Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY))}))
	digest := sha256.Sum256([]byte("m"))
	sig := must[[]byte](t)(td.Sign(alice, id, Mechanism{Type: ck.CKM_ECDSA}, digest[:]))
	if err := td.Verify(alice, k.ecPub, Mechanism{Type: ck.CKM_ECDSA}, digest[:], sig); err != nil {
		t.Fatalf("unwrapped private key is not the original: %v", err)
	}
	_, err := td.WrapKey(alice, k.rsaPriv, oaep, target)
	wantErr(t, err, ErrWrappingKeyInvalid)
}

func TestECDHDerive(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	pair := func() (ObjectID, []byte) {
		pub, priv, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
			Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))}, Template{Bool(ck.CKA_DERIVE, true)})
		if err != nil {
			t.Fatal(err)
		}
		return priv, attr(t, td, alice, pub, ck.CKA_EC_POINT)
	}
	a, aPoint := pair()
	b, bPoint := pair()
	tmpl := Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Ulong(ck.CKA_VALUE_LEN, 32)}
	ka := must[ObjectID](t)(td.DeriveKey(ctx, alice, a, Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_NULL, PublicData: bPoint}, tmpl))
	kb := must[ObjectID](t)(td.DeriveKey(ctx, alice, b, Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_NULL, PublicData: aPoint[2:]}, tmpl))
	gcm := Mechanism{Type: ck.CKM_AES_GCM, IV: []byte("caller-iv-12"), TagBits: 128}
	ct := must[[]byte](t)(td.Encrypt(alice, ka, gcm, []byte("agreed")))
	if pt, err := td.Decrypt(alice, kb, gcm, ct); err != nil || string(pt) != "agreed" {
		t.Fatalf("derived keys differ: %v", err)
	}
	_, err := td.DeriveKey(ctx, alice, a, Mechanism{Type: ck.CKM_ECDH1_DERIVE, KDF: ck.CKD_NULL, PublicData: []byte{4, 1, 2}}, tmpl)
	wantErr(t, err, ErrMechanismParamInvalid)
}

func TestCreateObjectImportsRawKeys(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	raw := bytes.Repeat([]byte{0x42}, 16)
	id := must[ObjectID](t)(td.CreateObject(ctx, alice, Template{
		Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)),
		Bytes(ck.CKA_VALUE, raw), Bool(ck.CKA_SENSITIVE, false), Bool(ck.CKA_TOKEN, true)}))
	if got := attr(t, td, alice, id, ck.CKA_VALUE); !bytes.Equal(got, raw) {
		t.Fatal("non-sensitive extractable value not readable")
	}
	if got := attr(t, td, alice, id, ck.CKA_ALWAYS_SENSITIVE); got[0] != 0 {
		t.Fatal("imported key claims CKA_ALWAYS_SENSITIVE")
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	d, _ := ec.Bytes()
	pid := must[ObjectID](t)(td.CreateObject(ctx, alice, Template{
		Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_EC)),
		Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P384())), Bytes(ck.CKA_VALUE, d)}))
	digest := make([]byte, 48)
	sig := must[[]byte](t)(td.Sign(alice, pid, Mechanism{Type: ck.CKM_ECDSA}, digest))
	if !ecdsa.Verify(&ec.PublicKey, digest, new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])) {
		t.Fatal("signature of the created key does not verify")
	}
	_, err := td.CreateObject(ctx, alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Bytes(ck.CKA_VALUE, raw[:5])})
	wantErr(t, err, ErrKeySizeRange)
	_, err = td.CreateObject(ctx, alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY))})
	wantErr(t, err, ErrTemplateIncomplete)
	data := must[ObjectID](t)(td.CreateObject(ctx, alice, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_DATA)), String(ck.CKA_APPLICATION, "app"), Bytes(ck.CKA_VALUE, []byte("v"))}))
	if got := attr(t, td, alice, data, ck.CKA_VALUE); string(got) != "v" {
		t.Fatal("data object value")
	}
}

func TestTokenKeysSurviveRestart(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	msg := []byte("persist")
	sig := must[[]byte](t)(td.Sign(alice, k.edPriv, Mechanism{Type: ck.CKM_EDDSA}, msg))
	mac := must[[]byte](t)(td.Sign(alice, k.hmac, Mechanism{Type: ck.CKM_SHA256_HMAC}, msg))

	td2 := td.reopen(t)
	s := td2.OpenSession()
	if err := td2.Login(t.Context(), s, RoleCryptoUser, "alice", cuPW); err != nil {
		t.Fatal(err)
	}
	if err := td2.Verify(s, k.edPub, Mechanism{Type: ck.CKM_EDDSA}, msg, sig); err != nil {
		t.Fatal(err)
	}
	if err := td2.Verify(s, k.hmac, Mechanism{Type: ck.CKM_SHA256_HMAC}, msg, mac); err != nil {
		t.Fatal(err)
	}
	if _, err := td2.Sign(s, k.rsaPriv, Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, msg); err != nil {
		t.Fatal(err)
	}
}

// TestPKCS8TrailingDataRefused: a private key given as PKCS#8 (imported,
// or unwrapped) must be exactly one DER structure; x509 alone would take
// the key and ignore what follows it.
func TestPKCS8TrailingDataRefused(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	k := makeKeys(t, td, alice)
	ctx := t.Context()
	ext, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ext)
	if err != nil {
		t.Fatal(err)
	}
	padded := append(slices.Clone(der), 0x05, 0x00)
	_, err = td.ImportPrivateKey(ctx, alice, padded, nil)
	wantErr(t, err, ErrArgumentsBad)
	kwp := Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}
	wrapped := must[[]byte](t)(td.Encrypt(alice, k.aes, kwp, padded))
	_, err = td.UnwrapKey(ctx, alice, k.aes, kwp, wrapped, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY))})
	wantErr(t, err, ErrWrappedKeyInvalid)
	// The same key without the trailing bytes is accepted both ways.
	must[ObjectID](t)(td.ImportPrivateKey(ctx, alice, der, nil))
	wrapped = must[[]byte](t)(td.Encrypt(alice, k.aes, kwp, der))
	must[ObjectID](t)(td.UnwrapKey(ctx, alice, k.aes, kwp, wrapped, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY))}))
}
