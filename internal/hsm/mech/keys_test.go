package mech

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"slices"
	"testing"
)

func TestParsePKCS8(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePKCS8(der)
	if err != nil {
		t.Fatal(err)
	}
	if !got.(*ecdsa.PrivateKey).Equal(k) {
		t.Fatal("parsed another key")
	}
	for name, in := range map[string][]byte{
		"trailing data":  append(slices.Clone(der), 0),
		"a second value": append(slices.Clone(der), 0x05, 0x00),
		"truncated":      der[:len(der)-1],
		"empty":          nil,
		"not a sequence": {0x04, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePKCS8(in)
			wantErr(t, err, ErrEncoding)
		})
	}
}
