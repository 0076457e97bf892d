package mech

import (
	"bytes"
	"crypto/elliptic"
	"testing"
)

// Parsers and checkers are fuzzed for exact round trips: whatever they
// accept must re-encode to the same bytes.

func FuzzECDSASigDER(f *testing.F) {
	k := testECKey(f, elliptic.P256())
	for range 3 {
		sig, err := SignECDSA(nil, k, make([]byte, 32))
		if err != nil {
			f.Fatal(err)
		}
		der, _ := ECDSASigToDER(elliptic.P256(), sig)
		f.Add(der)
	}
	f.Add(unhex(f, "3006020100020100"))
	f.Add(unhex(f, "300702020001020102"))
	f.Fuzz(func(t *testing.T, der []byte) {
		rs, err := ECDSASigFromDER(elliptic.P256(), der)
		if err != nil {
			return
		}
		again, err := ECDSASigToDER(elliptic.P256(), rs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, der) {
			t.Fatalf("accepted %x, re-encodes as %x", der, again)
		}
	})
}

func FuzzParseECPoint(f *testing.F) {
	k := testECKey(f, elliptic.P256())
	raw, _ := MarshalECPoint(&k.PublicKey)
	der, _ := MarshalECPointDER(&k.PublicKey)
	f.Add(raw)
	f.Add(der)
	f.Add([]byte{4})
	f.Fuzz(func(t *testing.T, in []byte) {
		pub, err := ParseECPoint(elliptic.P256(), in)
		if err != nil {
			return
		}
		got, err := MarshalECPoint(pub)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, in) && !bytes.Equal(got, in[len(in)-len(got):]) {
			t.Fatalf("accepted %x, re-encodes as %x", in, got)
		}
	})
}

func FuzzUnwrapKWP(f *testing.F) {
	b := mustAES(f, make([]byte, 16))
	for _, n := range []int{1, 8, 9, 20} {
		w, _ := WrapKWP(nil, b, nil, testBytes(uint64(n), n))
		f.Add(w)
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := UnwrapKWP(nil, b, nil, ct)
		if err != nil {
			return
		}
		again, err := WrapKWP(nil, b, nil, pt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, ct) {
			t.Fatalf("unwrapped %x to %x, which wraps as %x", ct, pt, again)
		}
	})
}

// FuzzDecryptCBCPad decrypts fuzzer-chosen ciphertexts as the device does
// (NewMultipart, ModeCBCPad): whatever it accepts must encrypt back to the
// same bytes under the one-shot reference.
func FuzzDecryptCBCPad(f *testing.F) {
	b := mustAES(f, make([]byte, 16))
	iv := make([]byte, 16)
	for _, n := range []int{0, 15, 16, 33} {
		ct, _ := EncryptCBCPad(nil, b, iv, testBytes(uint64(n), n))
		f.Add(ct)
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		// The path the device decrypts CKM_AES_CBC_PAD by (operation.go).
		m, err := NewMultipart(b, ModeCBCPad, Decrypt, iv, 0)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := m.Update(nil, ct)
		if err == nil {
			pt, err = m.Final(pt)
		}
		if err != nil {
			return
		}
		again, err := EncryptCBCPad(nil, b, iv, pt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, ct) {
			t.Fatalf("decrypted %x, which encrypts as %x", ct, again)
		}
	})
}

// FuzzMultipart feeds data in fuzzer-chosen chunks and compares with the
// one-shot functions.
func FuzzMultipart(f *testing.F) {
	b := mustAES(f, make([]byte, 16))
	iv := testBytes(1, 16)
	f.Add(uint8(ModeCBCPad), false, testBytes(2, 37), []byte{3, 16, 1})
	f.Add(uint8(ModeCBCPad), true, testBytes(3, 48), []byte{16, 16})
	f.Add(uint8(ModeECB), false, testBytes(4, 32), []byte{7})
	f.Add(uint8(ModeCTR), false, testBytes(5, 40), []byte{0, 5})
	f.Fuzz(func(t *testing.T, modeByte uint8, decrypt bool, data, splits []byte) {
		mode := Mode(modeByte%4 + 1)
		dir := Encrypt
		if decrypt {
			dir = Decrypt
		}
		want, wantErr := oneShotFor(mode, dir)(nil, b, iv, data)
		m, err := NewMultipart(b, mode, dir, iv, 128)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		rest := data
		for i := 0; len(rest) > 0; i++ {
			k := len(rest)
			if i < len(splits) {
				k = min(int(splits[i]), len(rest))
			}
			if got, err = m.Update(got, rest[:k]); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		got, err = m.Final(got)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("multipart error %v, one-shot error %v", err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("multipart %x, one-shot %x", got, want)
		}
	})
}
