package mech

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

// RFC 8032 §7.1 tests 1-3.
func TestEd25519KnownAnswers(t *testing.T) {
	tests := []struct{ name, seed, pub, msg, sig string }{
		{"test 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
			"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
			"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
		{"test 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
			"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
			"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
		{"test 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
			"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
			"6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			priv, err := Ed25519FromSeed(unhex(t, tt.seed))
			if err != nil {
				t.Fatal(err)
			}
			pub, msg, want := unhex(t, tt.pub), unhex(t, tt.msg), unhex(t, tt.sig)
			wantBytes(t, priv.Public().(ed25519.PublicKey), pub)
			sig, err := SignEd25519(priv, msg)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, sig, want)
			if err := VerifyEd25519(pub, msg, sig); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEd25519(t *testing.T) {
	priv, err := GenerateEd25519(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	msg := []byte("message")
	sig, err := SignEd25519(priv, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyEd25519(pub, msg, sig); err != nil {
		t.Fatal(err)
	}
	other, err := GenerateEd25519(nil)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sig)
	flipped[40] ^= 1
	tests := []struct {
		name string
		pub  []byte
		msg  []byte
		sig  []byte
		want error
	}{
		{"other message", pub, []byte("massage"), sig, ErrSignatureInvalid},
		{"other key", other.Public().(ed25519.PublicKey), msg, sig, ErrSignatureInvalid},
		{"flipped", pub, msg, flipped, ErrSignatureInvalid},
		{"short signature", pub, msg, sig[:63], ErrSignatureLen},
		{"long signature", pub, msg, append(bytes.Clone(sig), 0), ErrSignatureLen},
		{"short key", pub[:31], msg, sig, ErrKeySize},
		{"no key", nil, msg, sig, ErrKeySize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, VerifyEd25519(tt.pub, tt.msg, tt.sig), tt.want)
		})
	}
	_, err = SignEd25519(priv[:32], msg)
	wantErr(t, err, ErrKeySize)
	_, err = Ed25519FromSeed(make([]byte, 31))
	wantErr(t, err, ErrEncoding)
	// A reader is honoured: the same seed gives the same key.
	k1, _ := GenerateEd25519(bytes.NewReader(make([]byte, 32)))
	k2, _ := GenerateEd25519(bytes.NewReader(make([]byte, 32)))
	if !k1.Equal(k2) {
		t.Fatal("GenerateEd25519 ignored its reader")
	}
	_, err = GenerateEd25519(bytes.NewReader(make([]byte, 31)))
	wantErr(t, err, ErrSelfTest)
}

func TestEd25519Encodings(t *testing.T) {
	priv, err := GenerateEd25519(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	der, err := MarshalEd25519PointDER(pub)
	if err != nil {
		t.Fatal(err)
	}
	if len(der) != 34 || der[0] != 0x04 || der[1] != 32 {
		t.Fatalf("DER point %x", der)
	}
	for _, in := range [][]byte{pub, der} {
		got, err := ParseEd25519Point(in)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("ParseEd25519Point(%x) = %x, %v", in, got, err)
		}
	}
	for _, in := range [][]byte{nil, pub[:31], der[:33], append(bytes.Clone(der), 0), append([]byte{0x03}, der[1:]...)} {
		_, err := ParseEd25519Point(in)
		wantErr(t, err, ErrEncoding)
	}
	_, err = MarshalEd25519PointDER(pub[:31])
	wantErr(t, err, ErrKeySize)
	if !IsEd25519Params(Ed25519OID()) || !IsEd25519Params(append([]byte{0x13, 12}, "edwards25519"...)) {
		t.Fatal("Ed25519 parameters not recognised")
	}
	if IsEd25519Params(unhex(t, "06082a8648ce3d030107")) || IsEd25519Params(unhex(t, "06032b6571")) {
		t.Fatal("non-Ed25519 parameters recognised")
	}
}
