package hsm

import (
	"bytes"
	"crypto"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// kbkdfMech is SP 800-108's [i]_32 || label || 0x00 || context || [L]_32
// with an HMAC PRF.
func kbkdfMech(prf ck.MechanismType) Mechanism {
	return Mechanism{Type: ck.CKM_SP800_108_COUNTER_KDF, PRF: prf, KDFData: []KDFDataParam{
		{Type: ck.CK_SP800_108_ITERATION_VARIABLE, WidthBits: 32},
		{Type: ck.CK_SP800_108_BYTE_ARRAY, Value: []byte("label")},
		{Type: ck.CK_SP800_108_BYTE_ARRAY, Value: []byte{0}},
		{Type: ck.CK_SP800_108_BYTE_ARRAY, Value: []byte("context")},
		{Type: ck.CK_SP800_108_DKM_LENGTH, WidthBits: 32, DKMMethod: ck.CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS},
	}}
}

func TestSP800108CounterKDF(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	secret := bytes.Repeat([]byte{0x0b}, 48)
	base := func(extra ...Attribute) ObjectID {
		return must[ObjectID](t)(td.CreateObject(ctx, alice, append(Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)),
			Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)), Bytes(ck.CKA_VALUE, secret)}, extra...)))
	}
	b1, b2 := base(Bool(ck.CKA_DERIVE, true)), base(Bool(ck.CKA_DERIVE, true))
	aesTmpl := Template{Ulong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY)), Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Ulong(ck.CKA_VALUE_LEN, 32)}
	openTmpl := Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)), Ulong(ck.CKA_VALUE_LEN, 77),
		Bool(ck.CKA_SENSITIVE, false), Bool(ck.CKA_EXTRACTABLE, true)}
	for prf, h := range map[ck.MechanismType]crypto.Hash{ck.CKM_SHA_1_HMAC: crypto.SHA1, ck.CKM_SHA224_HMAC: crypto.SHA224,
		ck.CKM_SHA256_HMAC: crypto.SHA256, ck.CKM_SHA384_HMAC: crypto.SHA384, ck.CKM_SHA512_HMAC: crypto.SHA512} {
		m := kbkdfMech(prf)
		k1 := must[ObjectID](t)(td.DeriveKey(ctx, alice, b1, m, aesTmpl))
		k2 := must[ObjectID](t)(td.DeriveKey(ctx, alice, b2, m, aesTmpl))
		ct := must[[]byte](t)(td.Encrypt(alice, k1, gcm12, []byte("agreed")))
		if pt, err := td.Decrypt(alice, k2, gcm12, ct); err != nil || string(pt) != "agreed" {
			t.Fatalf("%v: keys derived from the same secret differ: %v", prf, err)
		}
		// Known answer: package mech's KDF, checked against NIST's vector
		// and OpenSSL's KBKDF.
		open := must[ObjectID](t)(td.DeriveKey(ctx, alice, b1, m, openTmpl))
		want := must[[]byte](t)(mech.KBKDFCounterHMAC(h, secret, []mech.KBKDFSegment{
			{Kind: mech.KBKDFCounter, WidthBits: 32}, {Kind: mech.KBKDFBytes, Bytes: []byte("label")}, {Kind: mech.KBKDFBytes, Bytes: []byte{0}},
			{Kind: mech.KBKDFBytes, Bytes: []byte("context")}, {Kind: mech.KBKDFLength, WidthBits: 32, SumOfKeys: true}}, 77))
		if got := attr(t, td, alice, open, ck.CKA_VALUE); !bytes.Equal(got, want) {
			t.Fatalf("%v: %x, want %x", prf, got, want)
		}
		// An imported base was never always sensitive: nor is what comes from it.
		if boolAttr(t, td, alice, k1, ck.CKA_ALWAYS_SENSITIVE) || boolAttr(t, td, alice, k1, ck.CKA_NEVER_EXTRACTABLE) {
			t.Fatalf("%v: a key derived from an imported secret claims ALWAYS_SENSITIVE or NEVER_EXTRACTABLE", prf)
		}
	}
	// A generated, sensitive, never extractable base passes both on.
	gen := must[ObjectID](t)(td.GenerateKey(ctx, alice, Mechanism{Type: ck.CKM_GENERIC_SECRET_KEY_GEN},
		Template{Ulong(ck.CKA_VALUE_LEN, 32), Bool(ck.CKA_DERIVE, true), Bool(ck.CKA_EXTRACTABLE, false)}))
	k := must[ObjectID](t)(td.DeriveKey(ctx, alice, gen, kbkdfMech(ck.CKM_SHA256_HMAC), with(aesTmpl, Bool(ck.CKA_EXTRACTABLE, false))))
	if !boolAttr(t, td, alice, k, ck.CKA_ALWAYS_SENSITIVE) || !boolAttr(t, td, alice, k, ck.CKA_NEVER_EXTRACTABLE) {
		t.Fatal("a key derived from a never-extractable base lost ALWAYS_SENSITIVE or NEVER_EXTRACTABLE")
	}

	noDerive := base()
	aesBase := importAES(t, td, alice, bytes.Repeat([]byte{1}, 32), Bool(ck.CKA_DERIVE, true))
	twoCounters := kbkdfMech(ck.CKM_SHA256_HMAC)
	twoCounters.KDFData = append(twoCounters.KDFData, KDFDataParam{Type: ck.CK_SP800_108_ITERATION_VARIABLE, WidthBits: 8})
	optional := kbkdfMech(ck.CKM_SHA256_HMAC)
	optional.KDFData = append(optional.KDFData, KDFDataParam{Type: ck.CK_SP800_108_OPTIONAL_COUNTER, WidthBits: 8})
	badDKM := kbkdfMech(ck.CKM_SHA256_HMAC)
	badDKM.KDFData[4].DKMMethod = 7
	for _, c := range []struct {
		name string
		base ObjectID
		m    Mechanism
		tmpl Template
		want *Kind
	}{
		{"no CKA_DERIVE", noDerive, kbkdfMech(ck.CKM_SHA256_HMAC), aesTmpl, ErrKeyFunctionDenied},
		{"AES base", aesBase, kbkdfMech(ck.CKM_SHA256_HMAC), aesTmpl, ErrKeyTypeInconsistent},
		{"CMAC PRF", b1, kbkdfMech(ck.CKM_AES_CMAC), aesTmpl, ErrMechanismParamInvalid},
		{"no CKA_VALUE_LEN", b1, kbkdfMech(ck.CKM_SHA256_HMAC), Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES))}, ErrTemplateIncomplete},
		{"801 bytes", b1, kbkdfMech(ck.CKM_SHA256_HMAC), Template{Ulong(ck.CKA_VALUE_LEN, 801)}, ErrTemplateInconsistent},
		{"two counters", b1, twoCounters, aesTmpl, ErrMechanismParamInvalid},
		{"optional counter", b1, optional, aesTmpl, ErrMechanismParamInvalid},
		{"DKM method 7", b1, badDKM, aesTmpl, ErrMechanismParamInvalid},
		{"no data", b1, Mechanism{Type: ck.CKM_SP800_108_COUNTER_KDF, PRF: ck.CKM_SHA256_HMAC}, aesTmpl, ErrMechanismParamInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := td.DeriveKey(ctx, alice, c.base, c.m, c.tmpl)
			wantErr(t, err, c.want)
		})
	}
}

func TestSP800108FIPSRefusesSHA1(t *testing.T) {
	td, admin := activate(t, newDeviceWith(t, Config{FIPS: true}))
	alice := withCU(t, td, admin, "alice")
	ctx := t.Context()
	b := must[ObjectID](t)(td.GenerateKey(ctx, alice, Mechanism{Type: ck.CKM_GENERIC_SECRET_KEY_GEN},
		Template{Ulong(ck.CKA_VALUE_LEN, 32), Bool(ck.CKA_DERIVE, true)}))
	tmpl := Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_AES)), Ulong(ck.CKA_VALUE_LEN, 32)}
	_, err := td.DeriveKey(ctx, alice, b, kbkdfMech(ck.CKM_SHA_1_HMAC), tmpl)
	wantErr(t, err, ErrMechanismParamInvalid)
	if _, err := td.DeriveKey(ctx, alice, b, kbkdfMech(ck.CKM_SHA256_HMAC), tmpl); err != nil {
		t.Fatalf("HMAC-SHA-256 PRF in FIPS mode: %v", err)
	}
}

// A key derived from another user's shared base stays in the HSM and holds
// at least 16 bytes, with the SP 800-108 KDF as with ECDH (one rule).
func TestSP800108SharedBase(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	ctx := t.Context()
	b := must[ObjectID](t)(td.GenerateKey(ctx, alice, Mechanism{Type: ck.CKM_GENERIC_SECRET_KEY_GEN},
		Template{Ulong(ck.CKA_VALUE_LEN, 32), Bool(ck.CKA_DERIVE, true), Bool(ck.CKA_TOKEN, true)}))
	noErr(t, td.ShareKey(ctx, alice, b, "bob"))
	m := kbkdfMech(ck.CKM_SHA256_HMAC)
	gs := func(n uint, extra ...Attribute) Template {
		return append(Template{Ulong(ck.CKA_KEY_TYPE, uint(ck.CKK_GENERIC_SECRET)), Ulong(ck.CKA_VALUE_LEN, n)}, extra...)
	}
	_, err := td.DeriveKey(ctx, bob, b, m, gs(32, Bool(ck.CKA_EXTRACTABLE, true)))
	wantErr(t, err, ErrTemplateInconsistent)
	_, err = td.DeriveKey(ctx, bob, b, m, gs(8))
	wantErr(t, err, ErrTemplateInconsistent)
	k := must[ObjectID](t)(td.DeriveKey(ctx, bob, b, m, gs(32)))
	if boolAttr(t, td, bob, k, ck.CKA_EXTRACTABLE) || !boolAttr(t, td, bob, k, ck.CKA_SENSITIVE) {
		t.Fatal("a key derived from a shared base is extractable or not sensitive")
	}
}
