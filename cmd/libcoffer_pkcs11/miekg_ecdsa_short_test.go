package main

import (
	"encoding/asn1"
	"encoding/hex"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestMiekgECDSAVerifyShortRS is SunPKCS11's verify of a good signature
// whose r and s both have a leading zero byte (one P-256 signature in about
// 65,536): it converts the DER signature to r||s from the integers, without
// those zeros, and passes 62 bytes to C_VerifyFinal. PKCS#11 allows a
// signature passed in for verification to be that short (r and s each half
// of it); the library answered CKR_SIGNATURE_LEN_RANGE, so Java said "the
// provider rejects its own signature" (TestJavaConcurrentSign, once in a
// few runs). Same calls as SunPKCS11: C_VerifyInit, C_VerifyUpdate,
// C_VerifyFinal; then C_Verify.
func TestMiekgECDSAVerifyShortRS(t *testing.T) {
	l := coffer(t)
	s := l.session(t)
	unhex := func(h string) []byte {
		b, err := hex.DecodeString(h)
		must(t, "hex", err)
		return b
	}
	// A P-256 key and a signature of msg whose r and s are both below 2^248
	// (crypto/ecdsa: a fresh key, signed until both had a zero top byte).
	point := unhex("04b94fac8b35a90dd0c5f4af834e1320e5c1af66a05d99f69743ca78119ebdf19c4e28cc67ad3eaf90250d9835c8d93758b7beeaecc9475eed3c3753a8ff6fa99a")
	msg := []byte("r and s both shorter than 32 bytes")
	r := unhex("00b8b59122f55b87b74e9bde0fbf226c59c9292731660c9c9619573c09d04a6e")
	sv := unhex("001fc8be4556b35fc20f93c23621b14c2d84cc318f4340da2baec1af182c57a3")
	full := append(append([]byte{}, r...), sv...)
	short := append(append([]byte{}, r[1:]...), sv[1:]...)

	p256, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	ecPoint, _ := asn1.Marshal(point)
	pub, err := l.ctx.CreateObject(s, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		attr(pkcs11.CKA_EC_PARAMS, p256), attr(pkcs11.CKA_EC_POINT, ecPoint),
		attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_VERIFY, true),
	})
	must(t, "C_CreateObject EC public key", err)
	t.Cleanup(func() { _ = l.ctx.DestroyObject(s, pub) })
	ecdsaSHA256 := mech(pkcs11.CKM_ECDSA_SHA256, nil)

	multi := func(sig []byte) error {
		must(t, "C_VerifyInit", l.ctx.VerifyInit(s, ecdsaSHA256, pub))
		must(t, "C_VerifyUpdate", l.ctx.VerifyUpdate(s, msg))
		return l.ctx.VerifyFinal(s, sig)
	}
	single := func(sig []byte) error {
		must(t, "C_VerifyInit", l.ctx.VerifyInit(s, ecdsaSHA256, pub))
		return l.ctx.Verify(s, msg, sig)
	}
	for name, verify := range map[string]func([]byte) error{"C_VerifyFinal": multi, "C_Verify": single} {
		wantRV(t, name+" of the 64-byte signature", verify(full), pkcs11.CKR_OK)
		wantRV(t, name+" of the same signature as 62 bytes", verify(short), pkcs11.CKR_OK)
		wantRV(t, name+" of 61 bytes", verify(short[:61]), pkcs11.CKR_SIGNATURE_LEN_RANGE)
		wantRV(t, name+" of 66 bytes", verify(append(append([]byte{}, full...), 0, 0)), pkcs11.CKR_SIGNATURE_LEN_RANGE)
		bad := append([]byte{}, short...)
		bad[len(bad)-1] ^= 1
		wantRV(t, name+" of a wrong 62-byte signature", verify(bad), pkcs11.CKR_SIGNATURE_INVALID)
	}
}
