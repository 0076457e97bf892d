package main

import (
	"encoding/binary"
	"testing"

	"github.com/miekg/pkcs11"
)

// The fuzz targets drive the C boundary's conversions (templates, mechanisms
// and their parameters; convert.go) through the built library, as an
// application would, with inputs no application should send. Whatever the
// input, the call must return a CKR_* code and the library must go on
// serving; CKR_GENERAL_ERROR is what a recovered panic returns, so it fails
// the target. The seeds run in every `go test`; `go test -fuzz` explores.

// fuzzTemplate decodes a template from b: per attribute a 4-byte type
// (little-endian), a length byte and that many value bytes. Types are
// folded into the range PKCS#11 defines so that most inputs name real
// attributes.
func fuzzTemplate(b []byte) []*pkcs11.Attribute {
	var out []*pkcs11.Attribute
	for len(b) >= 5 && len(out) < 32 {
		typ := uint(binary.LittleEndian.Uint32(b))
		if typ&0x80000000 == 0 {
			typ &= 0x7ff // CKA_CLASS .. CKA_ALLOWED_MECHANISMS and neighbours
		}
		n := int(b[4])
		b = b[5:]
		n = min(n, len(b))
		out = append(out, pkcs11.NewAttribute(typ, append([]byte(nil), b[:n]...)))
		b = b[n:]
	}
	return out
}

// rawAttr encodes one attribute for a fuzzTemplate seed.
func rawAttr(typ uint32, v []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, typ)
	return append(append(b, byte(len(v))), v...)
}

func seedTemplate(attrs ...[]byte) []byte {
	var b []byte
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

// okRV reports whether rv is an answer rather than a crash in disguise.
func okRV(rv pkcs11.Error) bool { return rv != pkcs11.CKR_GENERAL_ERROR }

func FuzzTemplate(f *testing.F) {
	yes, no := []byte{1}, []byte{0}
	f.Add(seedTemplate(rawAttr(pkcs11.CKA_CLASS, ulong(pkcs11.CKO_SECRET_KEY)),
		rawAttr(pkcs11.CKA_KEY_TYPE, ulong(pkcs11.CKK_AES)), rawAttr(pkcs11.CKA_VALUE_LEN, ulong(32))))
	f.Add(seedTemplate(rawAttr(pkcs11.CKA_CLASS, ulong(pkcs11.CKO_SECRET_KEY)),
		rawAttr(pkcs11.CKA_KEY_TYPE, ulong(pkcs11.CKK_AES)), rawAttr(pkcs11.CKA_VALUE, make([]byte, 16)),
		rawAttr(pkcs11.CKA_TOKEN, no), rawAttr(pkcs11.CKA_TRUSTED, yes)))
	f.Add(seedTemplate(rawAttr(pkcs11.CKA_CLASS, []byte{4}), rawAttr(pkcs11.CKA_LABEL, []byte("x"))))
	f.Add(seedTemplate(rawAttr(pkcs11.CKA_CLASS, ulong(pkcs11.CKO_DATA)), rawAttr(pkcs11.CKA_VALUE, []byte("d")),
		rawAttr(pkcs11.CKA_PRIVATE, []byte{7, 7})))
	f.Add(seedTemplate(rawAttr(pkcs11.CKA_VALUE_LEN, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})))
	f.Add(seedTemplate(rawAttr(0x80000001, []byte("vendor"))))
	f.Add([]byte{})
	l := coffer(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := l.session(t)
		tmpl := fuzzTemplate(b)
		for i, a := range tmpl {
			// A token object made here would outlive the test on the
			// shared cluster: keep what is made in the session.
			if a.Type == pkcs11.CKA_TOKEN {
				tmpl[i] = pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)
			}
		}
		check := func(what string, err error) {
			if rv := rvOf(err); !okRV(rv) {
				t.Fatalf("%s with template %x: %v", what, b, err)
			}
		}
		h, err := l.ctx.CreateObject(s, tmpl)
		check("C_CreateObject", err)
		if err == nil {
			_, err = l.ctx.GetAttributeValue(s, h, tmpl)
			check("C_GetAttributeValue", err)
			check("C_SetAttributeValue", l.ctx.SetAttributeValue(s, h, tmpl))
			check("C_DestroyObject", l.ctx.DestroyObject(s, h))
		}
		h, err = l.ctx.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), tmpl)
		check("C_GenerateKey", err)
		if err == nil {
			check("C_DestroyObject", l.ctx.DestroyObject(s, h))
		}
		err = l.ctx.FindObjectsInit(s, tmpl)
		check("C_FindObjectsInit", err)
		if err == nil {
			_, _, err = l.ctx.FindObjects(s, 4)
			check("C_FindObjects", err)
			check("C_FindObjectsFinal", l.ctx.FindObjectsFinal(s))
		}
	})
}

// fuzzMechs are the mechanisms whose parameters the boundary parses, with
// the key each is tried with.
var fuzzMechs = []struct {
	mech uint
	key  string // a fuzzKeys name
	op   string // "encrypt", "sign", "derive"
}{
	{pkcs11.CKM_AES_CBC, "aes", "encrypt"},
	{pkcs11.CKM_AES_CBC_PAD, "aes", "encrypt"},
	{pkcs11.CKM_AES_CTR, "aes", "encrypt"},
	{pkcs11.CKM_AES_GCM, "aes", "encrypt"},
	{ckmCloudHSMAESGCM, "aes", "encrypt"},
	{pkcs11.CKM_AES_KEY_WRAP, "aes", "encrypt"},
	{pkcs11.CKM_AES_KEY_WRAP_PAD, "aes", "encrypt"},
	{pkcs11.CKM_AES_ECB, "aes", "encrypt"},
	{pkcs11.CKM_AES_CMAC_GENERAL, "aes", "sign"},
	{pkcs11.CKM_SHA256_HMAC_GENERAL, "hmac", "sign"},
	{pkcs11.CKM_SHA256_HMAC, "hmac", "sign"},
	{pkcs11.CKM_SHA256_RSA_PKCS_PSS, "rsa", "sign"},
	{pkcs11.CKM_RSA_PKCS_PSS, "rsa", "sign"},
	{pkcs11.CKM_RSA_PKCS_OAEP, "rsa-pub", "encrypt"},
	{pkcs11.CKM_ECDH1_DERIVE, "ec", "derive"},
	{ckmAESWrapNoPad, "aes", "encrypt"},
	{ckmAESWrapZeroPad, "aes", "encrypt"},
	{ckmRSAAESKeyWrap, "rsa-pub", "encrypt"},
	{ckmSP800108CounterKDF, "hmac", "derive"},
	{0x80001234, "aes", "encrypt"}, // a vendor mechanism nobody defines
}

// fuzzParam makes a mechanism's parameter from b. For the mechanisms whose
// C parameter holds pointers, miekg/pkcs11 lays out the structure (its
// pointers are valid) from fields taken from b; for the rest the raw bytes
// are the parameter, whatever their length.
func fuzzParam(m uint, shape byte, b []byte) any {
	half := len(b) / 2
	word := func(i int) uint {
		if len(b) < i+8 {
			return uint(len(b))
		}
		return uint(binary.LittleEndian.Uint64(b[i:]))
	}
	switch {
	case (m == pkcs11.CKM_AES_GCM || m == ckmCloudHSMAESGCM) && shape&1 == 0:
		return pkcs11.NewGCMParams(b[:half], b[half:], int(word(0)%512))
	case m == pkcs11.CKM_RSA_PKCS_OAEP && shape&1 == 0:
		return pkcs11.NewOAEPParams(word(0)%0x300, word(8)%4, word(16)%3, b)
	case m == pkcs11.CKM_ECDH1_DERIVE && shape&1 == 0 && len(b) > 1:
		// (miekg/pkcs11 cannot lay out empty public data)
		return pkcs11.NewECDH1DeriveParams(word(0)%8, b[:half], b[half:])
	case m == pkcs11.CKM_SHA256_RSA_PKCS_PSS || m == pkcs11.CKM_RSA_PKCS_PSS:
		if shape&1 == 0 {
			return pkcs11.NewPSSParams(word(0)%0x300, word(8)%8, word(16)%1024)
		}
	}
	return nullPointers(m, b)
}

// pointerFields are the offsets of the pointers in the C parameter
// structures of the given size (LP64): a caller that passes a wild pointer
// cannot be defended against, but one that passes NULL with a length must
// get CKR_MECHANISM_PARAM_INVALID.
var pointerFields = map[uint]map[int][]int{
	pkcs11.CKM_AES_GCM:       {48: {0, 24}, 40: {0, 16}}, // CK_GCM_PARAMS (v3.0), and v2.40's without ulIvBits
	ckmCloudHSMAESGCM:        {48: {0, 24}, 40: {0, 16}},
	pkcs11.CKM_RSA_PKCS_OAEP: {40: {24}},
	pkcs11.CKM_ECDH1_DERIVE:  {40: {16, 32}},
	ckmRSAAESKeyWrap:         {16: {8}},      // CK_RSA_AES_KEY_WRAP_PARAMS
	ckmSP800108CounterKDF:    {40: {16, 32}}, // CK_SP800_108_KDF_PARAMS
}

func nullPointers(m uint, b []byte) []byte {
	offs := pointerFields[m][len(b)]
	if offs == nil {
		return b
	}
	b = append([]byte(nil), b...)
	for _, o := range offs {
		clear(b[o : o+8])
	}
	return b
}

func FuzzMechanism(f *testing.F) {
	for i, m := range fuzzMechs {
		f.Add(uint8(i), byte(0), []byte{})
		f.Add(uint8(i), byte(1), make([]byte, 16))
		f.Add(uint8(i), byte(0), append(ulong(uint(m.mech)), make([]byte, 24)...))
	}
	f.Add(uint8(3), byte(1), make([]byte, 40))                        // a v2.40-sized CK_GCM_PARAMS of zeros: NULL pointers, zero lengths
	f.Add(uint8(3), byte(1), make([]byte, 48))                        // a v3.0-sized one
	f.Add(uint8(2), byte(1), append(ulong(129), make([]byte, 16)...)) // CTR with 129 counter bits
	f.Add(uint8(8), byte(1), ulong(1<<40))                            // HMAC_GENERAL with a huge MAC length
	l := coffer(f)
	keys := fuzzKeys(f, l)
	f.Fuzz(func(t *testing.T, which uint8, shape byte, b []byte) {
		fm := fuzzMechs[int(which)%len(fuzzMechs)]
		s := l.session(t)
		mechs := mech(fm.mech, fuzzParam(fm.mech, shape, b))
		var err error
		switch fm.op {
		case "encrypt":
			if err = l.ctx.EncryptInit(s, mechs, keys[fm.key]); err == nil {
				_, err = l.ctx.Encrypt(s, make([]byte, 32))
			}
		case "sign":
			if err = l.ctx.SignInit(s, mechs, keys[fm.key]); err == nil {
				_, err = l.ctx.Sign(s, []byte("message"))
			}
		case "derive":
			var h pkcs11.ObjectHandle
			h, err = l.ctx.DeriveKey(s, mechs, keys[fm.key], []*pkcs11.Attribute{
				attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
				attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, false),
			})
			if err == nil {
				_ = l.ctx.DestroyObject(s, h)
			}
		}
		if rv := rvOf(err); !okRV(rv) {
			t.Fatalf("%#x (%s) with parameter shape %d %x: %v", fm.mech, fm.op, shape, b, err)
		}
	})
}

// fuzzKeys makes one session key of each kind the mechanisms need, in the
// library's anchor session (it lives as long as the process).
func fuzzKeys(tb testing.TB, l *loaded) map[string]pkcs11.ObjectHandle {
	tb.Helper()
	s := l.anchor
	keys := map[string]pkcs11.ObjectHandle{}
	var err error
	keys["aes"], err = l.ctx.GenerateKey(s, mech(pkcs11.CKM_AES_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true),
		attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_WRAP, true),
	})
	must(tb, "C_GenerateKey(AES)", err)
	keys["hmac"], err = l.ctx.GenerateKey(s, mech(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SIGN, true),
	})
	must(tb, "C_GenerateKey(generic secret)", err)
	pub, priv, err := l.ctx.GenerateKeyPair(s, mech(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil),
		[]*pkcs11.Attribute{attr(pkcs11.CKA_MODULUS_BITS, 2048), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true)},
		[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SIGN, true)})
	must(tb, "C_GenerateKeyPair(RSA)", err)
	// Encryption uses the public key, signing the private one: the map
	// holds the one each op needs.
	keys["rsa"] = priv
	keys["rsa-pub"] = pub
	_, ecPriv, err := l.ctx.GenerateKeyPair(s, mech(pkcs11.CKM_EC_KEY_PAIR_GEN, nil),
		[]*pkcs11.Attribute{attr(pkcs11.CKA_EC_PARAMS, []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}), attr(pkcs11.CKA_TOKEN, false)},
		[]*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_DERIVE, true)})
	must(tb, "C_GenerateKeyPair(EC)", err)
	keys["ec"] = ecPriv
	return keys
}
