package mech

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
)

func TestPKCS8RoundTrip(t *testing.T) {
	ed, err := GenerateEd25519(nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.Signer{
		"RSA-2048": testRSAKey(t, 2048),
		"RSA-4096": testRSAKey(t, 4096),
		"Ed25519":  ed,
	}
	for _, tc := range curves {
		keys[tc.name] = testECKey(t, tc.c)
	}
	for name, k := range keys {
		t.Run(name, func(t *testing.T) {
			der, err := MarshalPKCS8(k)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParsePKCS8(der)
			if err != nil {
				t.Fatal(err)
			}
			if !got.(interface{ Equal(crypto.PrivateKey) bool }).Equal(k) {
				t.Fatal("round trip changed the key")
			}
			spki, err := MarshalSPKI(k.Public())
			if err != nil {
				t.Fatal(err)
			}
			pub, err := ParseSPKI(spki)
			if err != nil {
				t.Fatal(err)
			}
			if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
				t.Fatal("SPKI round trip changed the key")
			}
		})
	}
}

func TestPKCS8Unsupported(t *testing.T) {
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GODEBUG", "rsa1024min=0")
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  any
		want error
	}{
		{"P-224", p224, ErrCurve},
		{"X25519", x25519, ErrKeyType},
		{"RSA-1024", rsa1024, ErrKeySize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := x509.MarshalPKCS8PrivateKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParsePKCS8(der)
			wantErr(t, err, tt.want)
			var uke *UnsupportedKeyError
			if !errors.As(err, &uke) {
				t.Fatalf("%v is not an *UnsupportedKeyError", err)
			}
			pub := tt.key.(interface{ Public() crypto.PublicKey }).Public()
			spki, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseSPKI(spki)
			wantErr(t, err, tt.want)
			_, err = MarshalSPKI(pub)
			wantErr(t, err, tt.want)
		})
	}
	_, err = MarshalPKCS8(ed25519.PrivateKey(make([]byte, 10)))
	wantErr(t, err, ErrKeySize)
	wantErr(t, CheckPublicKey(ed25519.PublicKey(make([]byte, 31))), ErrKeySize)
	wantErr(t, CheckPublicKey("not a key"), ErrKeyType)
	wantErr(t, CheckPublicKey(&rsa.PublicKey{E: 65537}), ErrKeySize)
	wantErr(t, CheckPrivateKey(nil), ErrKeyType)
	bad := *testRSAKey(t, 2048)
	bad.D = new(big.Int).Add(bad.D, big.NewInt(2))
	wantErr(t, CheckPrivateKey(&bad), ErrEncoding)
}

func TestPKCS8Malformed(t *testing.T) {
	der, err := MarshalPKCS8(testECKey(t, elliptic.P256()))
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"empty":     nil,
		"truncated": der[:len(der)-1],
		"garbage":   []byte("not DER at all"),
		"trailing":  append(der, 0),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePKCS8(in)
			wantErr(t, err, ErrEncoding)
			_, err = ParseSPKI(in)
			wantErr(t, err, ErrEncoding)
		})
	}
}
