package hsm

import (
	"bytes"
	"crypto/mldsa"
	"crypto/mlkem"
	"crypto/x509"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

func pqPair(t *testing.T, td *testDevice, s SessionID, m ck.MechanismType, ps ck.ParameterSet, extra ...Attribute) (pub, priv ObjectID) {
	t.Helper()
	pub, priv, err := td.GenerateKeyPair(t.Context(), s, Mechanism{Type: m},
		append(Template{Ulong(ck.CKA_PARAMETER_SET, uint(ps)), Bool(ck.CKA_TOKEN, true)}, extra...),
		Template{Bool(ck.CKA_TOKEN, true)})
	if err != nil {
		t.Fatalf("generate %v set %d: %v", m, ps, err)
	}
	return pub, priv
}

func pqAttr(t *testing.T, td *testDevice, s SessionID, id ObjectID, at ck.AttributeType) []byte {
	t.Helper()
	v, err := td.GetAttributes(s, id, []ck.AttributeType{at})
	if err != nil {
		t.Fatalf("get %v: %v", at, err)
	}
	return v[0].Value
}

func TestMLDSAGenerateSignVerify(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	for _, tc := range []struct {
		ps     ck.ParameterSet
		params mldsa.Parameters
	}{{ck.CKP_ML_DSA_44, mldsa.MLDSA44()}, {ck.CKP_ML_DSA_65, mldsa.MLDSA65()}, {ck.CKP_ML_DSA_87, mldsa.MLDSA87()}} {
		t.Run(tc.params.String(), func(t *testing.T) {
			pub, priv := pqPair(t, td, alice, ck.CKM_ML_DSA_KEY_PAIR_GEN, tc.ps)
			for _, id := range []ObjectID{pub, priv} {
				if got := decodeUlong(pqAttr(t, td, alice, id, ck.CKA_PARAMETER_SET)); got != uint(tc.ps) {
					t.Fatalf("CKA_PARAMETER_SET %d, want %d", got, tc.ps)
				}
				if got := ck.KeyType(decodeUlong(pqAttr(t, td, alice, id, ck.CKA_KEY_TYPE))); got != ck.CKK_ML_DSA {
					t.Fatalf("CKA_KEY_TYPE %v", got)
				}
			}
			enc := pqAttr(t, td, alice, pub, ck.CKA_VALUE)
			gpub, err := mldsa.NewPublicKey(tc.params, enc)
			if err != nil {
				t.Fatalf("CKA_VALUE is no %s public key: %v", tc.params, err)
			}
			// The private key is sensitive by default: its seed stays in.
			if _, err := td.GetAttributes(alice, priv, []ck.AttributeType{ck.CKA_SEED}); Code(err) != ck.CKR_ATTRIBUTE_SENSITIVE {
				t.Fatalf("CKA_SEED of a sensitive key: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
			}
			if id := pqAttr(t, td, alice, pub, ck.CKA_ID); len(id) != 20 || !bytes.Equal(id, pqAttr(t, td, alice, priv, ck.CKA_ID)) {
				t.Fatalf("key pair id %x / %x", id, pqAttr(t, td, alice, priv, ck.CKA_ID))
			}

			msg := []byte("post-quantum message")
			for _, m := range []Mechanism{
				{Type: ck.CKM_ML_DSA},
				{Type: ck.CKM_ML_DSA, Context: []byte("ctx"), Hedge: ck.CKH_HEDGE_REQUIRED},
				{Type: ck.CKM_ML_DSA, Context: []byte("ctx"), Hedge: ck.CKH_DETERMINISTIC_REQUIRED},
			} {
				sig, err := td.Sign(alice, priv, m, msg)
				if err != nil {
					t.Fatalf("sign: %v", err)
				}
				if len(sig) != tc.params.SignatureSize() {
					t.Fatalf("signature of %d bytes", len(sig))
				}
				if err := mldsa.Verify(gpub, msg, sig, &mldsa.Options{Context: string(m.Context)}); err != nil {
					t.Fatalf("Go's crypto/mldsa refuses the HSM's signature: %v", err)
				}
				if err := td.Verify(alice, pub, m, msg, sig); err != nil {
					t.Fatalf("verify: %v", err)
				}
				if err := td.Verify(alice, pub, m, []byte("other message"), sig); Code(err) != ck.CKR_SIGNATURE_INVALID {
					t.Fatalf("verify of another message: %v", err)
				}
				other := Mechanism{Type: ck.CKM_ML_DSA, Context: []byte("other")}
				if err := td.Verify(alice, pub, other, msg, sig); Code(err) != ck.CKR_SIGNATURE_INVALID {
					t.Fatalf("verify under another context: %v", err)
				}
				if err := td.Verify(alice, pub, m, msg, sig[1:]); Code(err) != ck.CKR_SIGNATURE_LEN_RANGE {
					t.Fatalf("verify of a short signature: %v", err)
				}
				if m.Hedge == ck.CKH_DETERMINISTIC_REQUIRED {
					again := must[[]byte](t)(td.Sign(alice, priv, m, msg))
					if !bytes.Equal(again, sig) {
						t.Fatal("deterministic signatures differ")
					}
				}
			}
			if _, err := td.Sign(alice, priv, Mechanism{Type: ck.CKM_ML_DSA, Context: make([]byte, 256)}, msg); Code(err) != ck.CKR_MECHANISM_PARAM_INVALID {
				t.Fatalf("256-byte context: %v", err)
			}
			if _, err := td.Sign(alice, priv, Mechanism{Type: ck.CKM_ML_DSA, Hedge: 7}, msg); Code(err) != ck.CKR_MECHANISM_PARAM_INVALID {
				t.Fatalf("hedge 7: %v", err)
			}
			if _, err := td.Sign(alice, pub, Mechanism{Type: ck.CKM_ML_DSA}, msg); Code(err) != ck.CKR_KEY_TYPE_INCONSISTENT {
				t.Fatalf("sign with the public key: %v", err)
			}
			// The standard SPKI of the public key is Go's.
			der := must[[]byte](t)(td.ExportPublicKey(alice, pub))
			if k, err := x509.ParsePKIXPublicKey(der); err != nil || !k.(*mldsa.PublicKey).Equal(gpub) {
				t.Fatalf("SPKI: %v", err)
			}
		})
	}
}

func TestMLDSAKeysSurviveRestart(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	pub, priv := pqPair(t, td, alice, ck.CKM_ML_DSA_KEY_PAIR_GEN, ck.CKP_ML_DSA_65)
	kem, dk := pqPair(t, td, alice, ck.CKM_ML_KEM_KEY_PAIR_GEN, ck.CKP_ML_KEM_1024)
	ek := pqAttr(t, td, alice, kem, ck.CKA_VALUE)

	td2 := td.reopen(t)
	s := td2.OpenSession()
	if err := td2.Login(t.Context(), s, RoleCryptoUser, "alice", cuPW); err != nil {
		t.Fatal(err)
	}
	msg := []byte("after a restart")
	sig := must[[]byte](t)(td2.Sign(s, priv, Mechanism{Type: ck.CKM_ML_DSA}, msg))
	if err := td2.Verify(s, pub, Mechanism{Type: ck.CKM_ML_DSA}, msg, sig); err != nil {
		t.Fatal(err)
	}
	if got := pqAttr(t, td2, s, kem, ck.CKA_VALUE); !bytes.Equal(got, ek) {
		t.Fatal("ML-KEM public key changed across the restart")
	}
	gek, err := mlkem.NewEncapsulationKey1024(ek)
	if err != nil {
		t.Fatal(err)
	}
	ss, ct := gek.Encapsulate()
	sk, err := td2.DecapsulateKey(t.Context(), s, dk, Mechanism{Type: ck.CKM_ML_KEM}, ct,
		Template{Bool(ck.CKA_SENSITIVE, false), Bool(ck.CKA_EXTRACTABLE, true)})
	if err != nil {
		t.Fatal(err)
	}
	if got := pqAttr(t, td2, s, sk, ck.CKA_VALUE); !bytes.Equal(got, ss) {
		t.Fatal("decapsulated secret differs after the restart")
	}
}

func TestMLKEMEncapsulateDecapsulate(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		ps     ck.ParameterSet
		ctSize int
	}{{"ML-KEM-768", ck.CKP_ML_KEM_768, mlkem.CiphertextSize768}, {"ML-KEM-1024", ck.CKP_ML_KEM_1024, mlkem.CiphertextSize1024}} {
		t.Run(tc.name, func(t *testing.T) {
			pub, priv := pqPair(t, td, alice, ck.CKM_ML_KEM_KEY_PAIR_GEN, tc.ps)
			if !decodeBool(pqAttr(t, td, alice, pub, ck.CKA_ENCAPSULATE)) || !decodeBool(pqAttr(t, td, alice, priv, ck.CKA_DECAPSULATE)) {
				t.Fatal("CKA_ENCAPSULATE / CKA_DECAPSULATE not true by default")
			}
			if decodeBool(pqAttr(t, td, alice, priv, ck.CKA_SIGN)) {
				t.Fatal("an ML-KEM key signs by default")
			}
			secretTmpl := Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)),
				Bool(ck.CKA_SENSITIVE, false), Bool(ck.CKA_ENCRYPT, true)}
			k1, ct, err := td.EncapsulateKey(ctx, alice, pub, Mechanism{Type: ck.CKM_ML_KEM}, secretTmpl)
			if err != nil {
				t.Fatalf("encapsulate: %v", err)
			}
			if len(ct) != tc.ctSize {
				t.Fatalf("ciphertext of %d bytes, want %d", len(ct), tc.ctSize)
			}
			k2 := must[ObjectID](t)(td.DecapsulateKey(ctx, alice, priv, Mechanism{Type: ck.CKM_ML_KEM}, ct, secretTmpl))
			s1, s2 := pqAttr(t, td, alice, k1, ck.CKA_VALUE), pqAttr(t, td, alice, k2, ck.CKA_VALUE)
			if len(s1) != 32 || !bytes.Equal(s1, s2) {
				t.Fatalf("shared secrets %x / %x", s1, s2)
			}
			if decodeBool(pqAttr(t, td, alice, k1, ck.CKA_LOCAL)) {
				t.Fatal("an encapsulated secret is CKA_LOCAL")
			}
			// Both ends are AES keys that encrypt alike.
			m := Mechanism{Type: ck.CKM_AES_CBC_PAD, IV: make([]byte, 16)}
			c1 := must[[]byte](t)(td.Encrypt(alice, k1, m, []byte("shared")))
			c2 := must[[]byte](t)(td.Encrypt(alice, k2, m, []byte("shared")))
			if !bytes.Equal(c1, c2) {
				t.Fatal("the two AES keys differ")
			}
			// A ciphertext from Go's own encapsulation decapsulates to Go's secret.
			var ss, gct []byte
			if tc.ps == ck.CKP_ML_KEM_768 {
				ek, err := mlkem.NewEncapsulationKey768(pqAttr(t, td, alice, pub, ck.CKA_VALUE))
				if err != nil {
					t.Fatal(err)
				}
				ss, gct = ek.Encapsulate()
			} else {
				ek, err := mlkem.NewEncapsulationKey1024(pqAttr(t, td, alice, pub, ck.CKA_VALUE))
				if err != nil {
					t.Fatal(err)
				}
				ss, gct = ek.Encapsulate()
			}
			k3 := must[ObjectID](t)(td.DecapsulateKey(ctx, alice, priv, Mechanism{Type: ck.CKM_ML_KEM}, gct,
				Template{Bool(ck.CKA_SENSITIVE, false), Ulong(ck.CKA_VALUE_LEN, 16)}))
			if got := pqAttr(t, td, alice, k3, ck.CKA_VALUE); !bytes.Equal(got, ss[:16]) {
				t.Fatalf("decapsulated %x, Go's secret %x", got, ss[:16])
			}

			for _, bad := range []struct {
				name string
				err  error
				want ck.RV
			}{
				{"short ciphertext", func() error {
					_, err := td.DecapsulateKey(ctx, alice, priv, Mechanism{Type: ck.CKM_ML_KEM}, ct[1:], nil)
					return err
				}(), ck.CKR_ENCRYPTED_DATA_LEN_RANGE},
				{"decapsulate with the public key", func() error {
					_, err := td.DecapsulateKey(ctx, alice, pub, Mechanism{Type: ck.CKM_ML_KEM}, ct, nil)
					return err
				}(), ck.CKR_KEY_TYPE_INCONSISTENT},
				{"encapsulate with the private key", func() error {
					_, _, err := td.EncapsulateKey(ctx, alice, priv, Mechanism{Type: ck.CKM_ML_KEM}, nil)
					return err
				}(), ck.CKR_KEY_TYPE_INCONSISTENT},
				{"secret longer than 32 bytes", func() error {
					_, _, err := td.EncapsulateKey(ctx, alice, pub, Mechanism{Type: ck.CKM_ML_KEM}, Template{Ulong(ck.CKA_VALUE_LEN, 33)})
					return err
				}(), ck.CKR_TEMPLATE_INCONSISTENT},
				{"private key class", func() error {
					_, _, err := td.EncapsulateKey(ctx, alice, pub, Mechanism{Type: ck.CKM_ML_KEM}, Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY))})
					return err
				}(), ck.CKR_TEMPLATE_INCONSISTENT},
				{"sign with ML-KEM", func() error {
					_, err := td.Sign(alice, priv, Mechanism{Type: ck.CKM_ML_DSA}, []byte("x"))
					return err
				}(), ck.CKR_KEY_TYPE_INCONSISTENT},
				{"wrap the ML-KEM private key", func() error {
					_, err := td.ExportKey(ctx, alice, priv)
					return err
				}(), ck.CKR_KEY_NOT_WRAPPABLE},
			} {
				if Code(bad.err) != bad.want {
					t.Errorf("%s: %v, want %v", bad.name, bad.err, bad.want)
				}
			}
		})
	}
}

// A key whose CKA_ENCAPSULATE or CKA_DECAPSULATE is false refuses, and one
// shared with another user decapsulates for it only into a sensitive,
// non-extractable secret (as a derived key is).
func TestMLKEMPolicy(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	ctx := t.Context()
	pub, priv, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: ck.CKM_ML_KEM_KEY_PAIR_GEN},
		Template{Ulong(ck.CKA_PARAMETER_SET, uint(ck.CKP_ML_KEM_768)), Bool(ck.CKA_ENCAPSULATE, false), Bool(ck.CKA_TOKEN, true)},
		Template{Bool(ck.CKA_TOKEN, true), Bool(ck.CKA_DECAPSULATE, false)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := td.EncapsulateKey(ctx, alice, pub, Mechanism{Type: ck.CKM_ML_KEM}, nil); Code(err) != ck.CKR_KEY_FUNCTION_NOT_PERMITTED {
		t.Fatalf("encapsulate, CKA_ENCAPSULATE false: %v", err)
	}
	ek, _ := mlkem.NewEncapsulationKey768(pqAttr(t, td, alice, pub, ck.CKA_VALUE))
	_, ct := ek.Encapsulate()
	if _, err := td.DecapsulateKey(ctx, alice, priv, Mechanism{Type: ck.CKM_ML_KEM}, ct, nil); Code(err) != ck.CKR_KEY_FUNCTION_NOT_PERMITTED {
		t.Fatalf("decapsulate, CKA_DECAPSULATE false: %v", err)
	}

	pub2, priv2 := pqPair(t, td, alice, ck.CKM_ML_KEM_KEY_PAIR_GEN, ck.CKP_ML_KEM_768)
	if err := td.ShareKey(ctx, alice, priv2, "bob"); err != nil {
		t.Fatal(err)
	}
	_ = pub2
	ek2, _ := mlkem.NewEncapsulationKey768(pqAttr(t, td, alice, pub2, ck.CKA_VALUE))
	_, ct2 := ek2.Encapsulate()
	if _, err := td.DecapsulateKey(ctx, bob, priv2, Mechanism{Type: ck.CKM_ML_KEM}, ct2,
		Template{Bool(ck.CKA_EXTRACTABLE, true)}); Code(err) != ck.CKR_TEMPLATE_INCONSISTENT {
		t.Fatalf("bob decapsulates alice's key into an extractable secret: %v", err)
	}
	k := must[ObjectID](t)(td.DecapsulateKey(ctx, bob, priv2, Mechanism{Type: ck.CKM_ML_KEM}, ct2, nil))
	if decodeBool(pqAttr(t, td, bob, k, ck.CKA_EXTRACTABLE)) || !decodeBool(pqAttr(t, td, bob, k, ck.CKA_SENSITIVE)) {
		t.Fatal("a secret from another user's key is extractable or not sensitive")
	}
}

func TestPQTemplates(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	gen := func(m ck.MechanismType, pubT, privT Template) error {
		_, _, err := td.GenerateKeyPair(ctx, alice, Mechanism{Type: m}, pubT, privT)
		return err
	}
	ps := func(v ck.ParameterSet) Attribute { return Ulong(ck.CKA_PARAMETER_SET, uint(v)) }
	for _, tc := range []struct {
		name string
		err  error
		want ck.RV
	}{
		{"no parameter set", gen(ck.CKM_ML_DSA_KEY_PAIR_GEN, nil, nil), ck.CKR_TEMPLATE_INCOMPLETE},
		{"unknown parameter set", gen(ck.CKM_ML_DSA_KEY_PAIR_GEN, Template{ps(4)}, nil), ck.CKR_ATTRIBUTE_VALUE_INVALID},
		{"sets differ", gen(ck.CKM_ML_DSA_KEY_PAIR_GEN, Template{ps(1)}, Template{ps(2)}), ck.CKR_TEMPLATE_INCONSISTENT},
		{"ML-KEM-512", gen(ck.CKM_ML_KEM_KEY_PAIR_GEN, Template{ps(ck.CKP_ML_KEM_512)}, nil), ck.CKR_KEY_SIZE_RANGE},
		{"parameter set in the private template", gen(ck.CKM_ML_KEM_KEY_PAIR_GEN, nil, Template{ps(ck.CKP_ML_KEM_768)}), ck.CKR_OK},
		{"key type of the other family", gen(ck.CKM_ML_KEM_KEY_PAIR_GEN, Template{ps(ck.CKP_ML_KEM_768), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_ML_DSA))}, nil), ck.CKR_TEMPLATE_INCONSISTENT},
	} {
		if Code(tc.err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}

	// C_CreateObject from a seed: the key is Go's key of that seed.
	seed := bytes.Repeat([]byte{7}, 32)
	priv := must[ObjectID](t)(td.CreateObject(ctx, alice, Template{
		Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_ML_DSA)),
		ps(ck.CKP_ML_DSA_44), Bytes(ck.CKA_SEED, seed), Bool(ck.CKA_SENSITIVE, false)}))
	if got := pqAttr(t, td, alice, priv, ck.CKA_SEED); !bytes.Equal(got, seed) {
		t.Fatalf("CKA_SEED %x of a non-sensitive key", got)
	}
	// A search never probes key material, and the seed is fixed once made.
	if found := must[[]ObjectID](t)(td.FindObjects(alice, Template{Bytes(ck.CKA_SEED, seed)})); len(found) != 0 {
		t.Fatalf("a search by CKA_SEED found %v", found)
	}
	if err := td.SetAttributes(ctx, alice, priv, Template{Bytes(ck.CKA_SEED, make([]byte, 32))}); Code(err) != ck.CKR_ATTRIBUTE_READ_ONLY {
		t.Fatalf("set CKA_SEED: %v", err)
	}
	if err := td.SetAttributes(ctx, alice, priv, Template{Ulong(ck.CKA_PARAMETER_SET, uint(ck.CKP_ML_DSA_87))}); Code(err) != ck.CKR_ATTRIBUTE_READ_ONLY {
		t.Fatalf("set CKA_PARAMETER_SET: %v", err)
	}
	gk, _ := mldsa.NewPrivateKey(mldsa.MLDSA44(), seed)
	pub := must[ObjectID](t)(td.CreateObject(ctx, alice, Template{
		Ulong(ck.CKA_CLASS, uint(ck.CKO_PUBLIC_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_ML_DSA)),
		ps(ck.CKP_ML_DSA_44), Bytes(ck.CKA_VALUE, gk.PublicKey().Bytes())}))
	sig := must[[]byte](t)(td.Sign(alice, priv, Mechanism{Type: ck.CKM_ML_DSA}, []byte("m")))
	if err := td.Verify(alice, pub, Mechanism{Type: ck.CKM_ML_DSA}, []byte("m"), sig); err != nil {
		t.Fatal(err)
	}
	if _, err := td.CreateObject(ctx, alice, Template{
		Ulong(ck.CKA_CLASS, uint(ck.CKO_PUBLIC_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_ML_DSA)),
		ps(ck.CKP_ML_DSA_65), Bytes(ck.CKA_VALUE, gk.PublicKey().Bytes())}); Code(err) != ck.CKR_ATTRIBUTE_VALUE_INVALID {
		t.Fatalf("ML-DSA-44 key as ML-DSA-65: %v", err)
	}
	// ML-DSA private keys wrap as PKCS#8 (Go's seed form) and come back.
	wk := must[ObjectID](t)(td.GenerateKey(ctx, alice, Mechanism{Type: ck.CKM_AES_KEY_GEN}, Template{Ulong(ck.CKA_VALUE_LEN, 32), Bool(ck.CKA_WRAP, true), Bool(ck.CKA_UNWRAP, true)}))
	wrapped := must[[]byte](t)(td.WrapKey(alice, wk, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, priv))
	back := must[ObjectID](t)(td.UnwrapKey(ctx, alice, wk, Mechanism{Type: ck.CKM_AES_KEY_WRAP_PAD}, wrapped,
		Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_PRIVATE_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_ML_DSA)), Bool(ck.CKA_SENSITIVE, false)}))
	if got := pqAttr(t, td, alice, back, ck.CKA_SEED); !bytes.Equal(got, seed) {
		t.Fatalf("unwrapped seed %x", got)
	}
}
