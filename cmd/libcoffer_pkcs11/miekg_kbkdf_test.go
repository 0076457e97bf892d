package main

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/coffer-hsm/coffer/internal/ck"
	hmech "github.com/coffer-hsm/coffer/internal/hsm/mech"
)

const ckmSP800108CounterKDF = uint(ck.CKM_SP800_108_COUNTER_KDF)

// kbkdfParam is one CK_PRF_DATA_PARAM to lay out.
type kbkdfParam struct {
	typ          uint
	width        uint
	littleEndian bool
	dkmMethod    uint
	value        []byte
}

// kbkdfParams lays out CK_SP800_108_KDF_PARAMS, its CK_PRF_DATA_PARAM array
// and what they point to in C memory (64-bit CK_ULONG and pointers;
// CK_BBOOL padded to 8 bytes before the CK_ULONG that follows it).
func kbkdfParams(t *testing.T, prf uint, ps []kbkdfParam) []byte {
	mem := newCMemory(t, 8192)
	ne := binary.NativeEndian
	next := 1024 // values go from here
	put := func(b []byte) uint64 {
		at := next
		copy(mem.b[at:], b)
		next += (len(b) + 15) &^ 15
		return mem.addr(at)
	}
	for i, p := range ps {
		var v []byte
		switch p.typ {
		case ck.CK_SP800_108_ITERATION_VARIABLE:
			v = make([]byte, 16) // CK_SP800_108_COUNTER_FORMAT
			if p.littleEndian {
				v[0] = 1
			}
			ne.PutUint64(v[8:], uint64(p.width))
		case ck.CK_SP800_108_DKM_LENGTH:
			v = make([]byte, 24) // CK_SP800_108_DKM_LENGTH_FORMAT
			ne.PutUint64(v, uint64(p.dkmMethod))
			if p.littleEndian {
				v[8] = 1
			}
			ne.PutUint64(v[16:], uint64(p.width))
		default:
			v = p.value
		}
		e := mem.b[i*24:]
		ne.PutUint64(e, uint64(p.typ))
		ne.PutUint64(e[8:], put(v))
		ne.PutUint64(e[16:], uint64(len(v)))
	}
	out := ne.AppendUint64(nil, uint64(prf))
	out = ne.AppendUint64(out, uint64(len(ps)))
	out = ne.AppendUint64(out, mem.addr(0))
	out = ne.AppendUint64(out, 0) // ulAdditionalDerivedKeys
	return ne.AppendUint64(out, 0)
}

// TestMiekgSP800108 derives with the SP 800-108 counter KDF through the
// library: two base keys of one secret give the same key, which is the KDF
// computed outside the token.
func TestMiekgSP800108(t *testing.T) {
	l := coffer(t)
	testSP800108(t, &mechTest{l: l, s: l.session(t), used: map[uint]bool{}})
}

func testSP800108(t *testing.T, x *mechTest) {
	secret := bytes.Repeat([]byte{0x5c}, 32)
	base := func() pkcs11.ObjectHandle {
		h, err := x.l.ctx.CreateObject(x.s, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			attr(pkcs11.CKA_VALUE, secret), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_DERIVE, true),
		})
		must(t, "C_CreateObject generic secret", err)
		return h
	}
	b1, b2 := base(), base()
	layout := []kbkdfParam{
		{typ: ck.CK_SP800_108_ITERATION_VARIABLE, width: 16, littleEndian: true},
		{typ: ck.CK_SP800_108_BYTE_ARRAY, value: []byte("label\x00context")},
		{typ: ck.CK_SP800_108_DKM_LENGTH, width: 32, dkmMethod: ck.CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS},
	}
	for _, c := range []struct {
		prf  uint
		hash crypto.Hash
	}{{pkcs11.CKM_SHA256_HMAC, crypto.SHA256}, {pkcs11.CKM_SHA384_HMAC, crypto.SHA384}, {pkcs11.CKM_SHA512_HMAC, crypto.SHA512}} {
		m := mech(ckmSP800108CounterKDF, kbkdfParams(t, c.prf, layout))
		aes := []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES), attr(pkcs11.CKA_VALUE_LEN, 32),
			attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_DECRYPT, true),
		}
		k1, err := x.l.ctx.DeriveKey(x.s, m, b1, aes)
		must(t, "C_DeriveKey", err)
		k2, err := x.l.ctx.DeriveKey(x.s, m, b2, aes)
		must(t, "C_DeriveKey", err)
		msg := []byte("sixteen byte msg")
		ct := x.crypt(t, true, mech(pkcs11.CKM_AES_ECB, nil), k1, msg)
		if pt := x.crypt(t, false, mech(pkcs11.CKM_AES_ECB, nil), k2, ct); !bytes.Equal(pt, msg) {
			t.Fatal("keys derived from one secret differ")
		}
		open, err := x.l.ctx.DeriveKey(x.s, m, b1, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			attr(pkcs11.CKA_VALUE_LEN, 100), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SENSITIVE, false), attr(pkcs11.CKA_EXTRACTABLE, true),
		})
		must(t, "C_DeriveKey", err)
		want, err := hmech.KBKDFCounterHMAC(c.hash, secret, []hmech.KBKDFSegment{
			{Kind: hmech.KBKDFCounter, WidthBits: 16, LittleEndian: true}, {Kind: hmech.KBKDFBytes, Bytes: []byte("label\x00context")},
			{Kind: hmech.KBKDFLength, WidthBits: 32, SumOfKeys: true}}, 100)
		must(t, "KBKDF", err)
		if got := x.get(t, open, pkcs11.CKA_VALUE); !bytes.Equal(got, want) {
			t.Fatalf("derived %x, want %x", got, want)
		}
	}
	aes := []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, false)}
	_, err := x.l.ctx.DeriveKey(x.s, mech(ckmSP800108CounterKDF, kbkdfParams(t, pkcs11.CKM_AES_CMAC, layout)), b1, aes)
	wantRV(t, "CMAC PRF", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	_, err = x.l.ctx.DeriveKey(x.s, mech(ckmSP800108CounterKDF, kbkdfParams(t, pkcs11.CKM_SHA256_HMAC, layout[1:])), b1, aes)
	wantRV(t, "no counter", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	p := kbkdfParams(t, pkcs11.CKM_SHA256_HMAC, layout)
	binary.NativeEndian.PutUint64(p[24:], 1) // ulAdditionalDerivedKeys
	_, err = x.l.ctx.DeriveKey(x.s, mech(ckmSP800108CounterKDF, p), b1, aes)
	wantRV(t, "additional derived keys", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	_, err = x.l.ctx.DeriveKey(x.s, mech(ckmSP800108CounterKDF, []byte{1, 2}), b1, aes)
	wantRV(t, "malformed parameters", err, pkcs11.CKR_MECHANISM_PARAM_INVALID)
	x.use(ckmSP800108CounterKDF)
}
