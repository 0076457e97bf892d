package mech

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
)

// RFC 3394 §4.1's key and data with PKCS #5 padding: a 16-byte key gains a
// whole block of eight 0x08 bytes, so the wrapping is RFC 3394's of the 24
// padded bytes (checked against WrapKW, itself checked against RFC 3394).
func TestKWPKCS5(t *testing.T) {
	b := mustAES(t, unhex(t, "000102030405060708090A0B0C0D0E0F"))
	for _, n := range []int{8, 9, 15, 16, 17, 31, 32, 33, 100} {
		src := bytes.Repeat([]byte{0x5a}, n)
		src[0] = byte(n)
		got, err := WrapKWPKCS5(nil, b, src)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		pad := 8 - n%8
		want, err := WrapKW(nil, b, nil, append(bytes.Clone(src), bytes.Repeat([]byte{byte(pad)}, pad)...))
		if err != nil {
			t.Fatal(err)
		}
		wantBytes(t, got, want)
		if len(got) != n+pad+8 {
			t.Fatalf("%d bytes wrapped into %d", n, len(got))
		}
		back, err := UnwrapKWPKCS5([]byte("pre"), b, got)
		if err != nil {
			t.Fatalf("%d bytes: unwrap: %v", n, err)
		}
		wantBytes(t, back, append([]byte("pre"), src...))
	}
	if _, err := WrapKWPKCS5(nil, b, make([]byte, 7)); !errors.Is(err, ErrDataLen) {
		t.Fatalf("7-byte key: %v, want ErrDataLen", err)
	}
}

// Padding that is not PKCS #5's, under a valid RFC 3394 integrity check, is
// refused as a failed unwrap, and so is a modified ciphertext.
func TestKWPKCS5BadPadding(t *testing.T) {
	b := mustAES(t, unhex(t, "000102030405060708090A0B0C0D0E0F"))
	for name, padded := range map[string][]byte{
		"pad byte 0":         append(bytes.Repeat([]byte{1}, 15), 0),
		"pad byte 9":         append(bytes.Repeat([]byte{1}, 15), 9),
		"pad bytes differ":   append(bytes.Repeat([]byte{1}, 13), 2, 3, 3),
		"pad leaves 7 bytes": append(bytes.Repeat([]byte{1}, 7), bytes.Repeat([]byte{9}, 9)...),
		"one pad byte off":   append(bytes.Repeat([]byte{1}, 9), 7, 7, 7, 7, 6, 7, 7),
	} {
		w, err := WrapKW(nil, b, nil, padded)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnwrapKWPKCS5(nil, b, w); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("%s: %v, want ErrAuthFailed", name, err)
		}
	}
	w, err := WrapKWPKCS5(nil, b, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	w[len(w)-1] ^= 1
	if _, err := UnwrapKWPKCS5(nil, b, w); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("modified: %v, want ErrAuthFailed", err)
	}
}

func TestCheckDefaultKWIV(t *testing.T) {
	for _, iv := range [][]byte{nil, unhex(t, "A6A6A6A6A6A6A6A6")} {
		if err := CheckDefaultKWIV(iv); err != nil {
			t.Errorf("%x: %v", iv, err)
		}
	}
	for _, iv := range [][]byte{unhex(t, "A6A6A6A6A6A6A6A7"), unhex(t, "A65959A6"), make([]byte, 16)} {
		if err := CheckDefaultKWIV(iv); !errors.Is(err, ErrParam) {
			t.Errorf("%x: %v, want ErrParam", iv, err)
		}
	}
}

func TestRSAAESRoundTrip(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	target := bytes.Repeat([]byte{0x42}, 37) // not a multiple of 8: RFC 5649 pads
	for _, bits := range []int{128, 192, 256} {
		p := RSAAESParams{AESKeyBits: bits, OAEP: OAEPParams{Hash: crypto.SHA256, MGF: crypto.SHA256, Label: []byte("l")}}
		w, err := WrapRSAAES(rand.Reader, &priv.PublicKey, p, target)
		if err != nil {
			t.Fatal(err)
		}
		if len(w) != priv.Size()+48 {
			t.Fatalf("%d bits: %d bytes, want the modulus and 48", bits, len(w))
		}
		// The second part is the RFC 5649 wrapping under the key the first
		// part carries.
		tmp, err := DecryptOAEP(priv, p.OAEP, w[:priv.Size()])
		if err != nil || len(tmp) != bits/8 {
			t.Fatalf("temporary key: %d bytes, %v", len(tmp), err)
		}
		inner, err := UnwrapKWP(nil, mustAES(t, tmp), nil, w[priv.Size():])
		if err != nil {
			t.Fatal(err)
		}
		wantBytes(t, inner, target)
		back, err := UnwrapRSAAES(priv, p, w)
		if err != nil {
			t.Fatal(err)
		}
		wantBytes(t, back, target)

		other := p
		other.OAEP.Label = []byte("m")
		if _, err := UnwrapRSAAES(priv, other, w); !errors.Is(err, ErrEncryptedDataInvalid) {
			t.Fatalf("another label: %v", err)
		}
		w[len(w)-1] ^= 1
		if _, err := UnwrapRSAAES(priv, p, w); !errors.Is(err, ErrEncryptedDataInvalid) {
			t.Fatalf("modified: %v", err)
		}
		if _, err := UnwrapRSAAES(priv, p, w[:priv.Size()+8]); !errors.Is(err, ErrDataLen) {
			t.Fatalf("short: %v", err)
		}
	}
	// A temporary key of another size than ulAESKeyBits says is refused.
	p128 := RSAAESParams{AESKeyBits: 128, OAEP: OAEPParams{Hash: crypto.SHA256, MGF: crypto.SHA256}}
	w, err := WrapRSAAES(rand.Reader, &priv.PublicKey, p128, target)
	if err != nil {
		t.Fatal(err)
	}
	p256 := p128
	p256.AESKeyBits = 256
	if _, err := UnwrapRSAAES(priv, p256, w); !errors.Is(err, ErrEncryptedDataInvalid) {
		t.Fatalf("ulAESKeyBits mismatch: %v", err)
	}
	for _, bits := range []int{0, 64, 512} {
		if _, err := WrapRSAAES(rand.Reader, &priv.PublicKey, RSAAESParams{AESKeyBits: bits, OAEP: p128.OAEP}, target); !errors.Is(err, ErrParam) {
			t.Errorf("%d bits: %v, want ErrParam", bits, err)
		}
	}
}
