package mech

import (
	"bytes"
	"testing"
)

const (
	cmacMsg = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710"
)

// RFC 4493 §4 (AES-128) and NIST SP 800-38B appendix D (AES-192, AES-256).
var cmacVectors = []struct {
	name, key string
	n         int // message length, a prefix of cmacMsg
	tag       string
}{
	{"RFC4493 ex1 len 0", sp38aKey128, 0, "bb1d6929e95937287fa37d129b756746"},
	{"RFC4493 ex2 len 16", sp38aKey128, 16, "070a16b46b4d4144f79bdd9dd04a287c"},
	{"RFC4493 ex3 len 40", sp38aKey128, 40, "dfa66747de9ae63030ca32611497c827"},
	{"RFC4493 ex4 len 64", sp38aKey128, 64, "51f0bebf7e3b9d92fc49741779363cfe"},
	{"AES-192 len 0", "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 0, "d17ddf46adaacde531cac483de7a9367"},
	{"AES-192 len 16", "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 16, "9e99a7bf31e710900662f65e617c5184"},
	{"AES-192 len 40", "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 40, "8a1de5be2eb31aad089a82e6ee908b0e"},
	{"AES-192 len 64", "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 64, "a1d5df0eed790f794d77589659f39a11"},
	{"AES-256 len 0", sp38aKey256, 0, "028962f61b7bf89efc6b551f4667d983"},
	{"AES-256 len 16", sp38aKey256, 16, "28a7023f452e8f82bd4bf28d8c37c35c"},
	{"AES-256 len 40", sp38aKey256, 40, "aaf3d8f1de5640c232f5b169b9c911e6"},
	{"AES-256 len 64", sp38aKey256, 64, "e1992190549f6ed5696a2c056c315410"},
}

func TestCMACSubkeys(t *testing.T) { // RFC 4493 §4, subkey generation
	m, err := NewCMAC(mustAES(t, unhex(t, sp38aKey128)))
	if err != nil {
		t.Fatal(err)
	}
	c := m.(*cmac)
	wantBytes(t, c.k1[:], unhex(t, "fbeed618357133667c85e08f7236a8de"))
	wantBytes(t, c.k2[:], unhex(t, "f7ddac306ae266ccf90bc11ee46d513b"))
}

func TestCMACKnownAnswers(t *testing.T) {
	for _, v := range cmacVectors {
		t.Run(v.name, func(t *testing.T) {
			b := mustAES(t, unhex(t, v.key))
			msg, tag := unhex(t, cmacMsg)[:v.n], unhex(t, v.tag)
			got, err := SignCMAC(b, msg, CMACSize)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, got, tag)
			if err := VerifyCMAC(b, msg, tag, CMACSize); err != nil {
				t.Fatal(err)
			}
			// Every split into two writes gives the same tag.
			m, err := NewCMAC(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i <= len(msg); i++ {
				m.Reset()
				m.Write(msg[:i])
				m.Write(msg[i:])
				wantBytes(t, m.Sum(nil), tag)
			}
			// Byte at a time, with Sum in the middle not disturbing the state.
			m.Reset()
			for i := range msg {
				m.Write(msg[i : i+1])
				m.Sum(nil)
			}
			wantBytes(t, m.Sum([]byte("x"))[1:], tag)
		})
	}
}

func TestCMACTruncated(t *testing.T) {
	b := mustAES(t, testBytes(1, 16))
	msg := testBytes(2, 100)
	full, err := SignCMAC(b, msg, CMACSize)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= CMACSize; n++ {
		got, err := SignCMAC(b, msg, n)
		if err != nil {
			t.Fatal(err)
		}
		wantBytes(t, got, full[:n])
		if err := VerifyCMAC(b, msg, got, n); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		bad := bytes.Clone(got)
		bad[n-1] ^= 1
		wantErr(t, VerifyCMAC(b, msg, bad, n), ErrSignatureInvalid)
		if n < CMACSize { // a full tag where a truncated one is expected
			wantErr(t, VerifyCMAC(b, msg, full, n), ErrSignatureLen)
		}
	}
	for _, n := range []int{0, -1, 17} {
		_, err := SignCMAC(b, msg, n)
		wantErr(t, err, ErrParam)
		wantErr(t, VerifyCMAC(b, msg, full, n), ErrParam)
	}
	wantErr(t, VerifyCMAC(b, msg, full[:15], 16), ErrSignatureLen)
	wantErr(t, VerifyCMAC(b, append(msg, 0), full, 16), ErrSignatureInvalid)
	if _, err := NewCMAC(badBlock{}); err == nil {
		t.Fatal("NewCMAC accepted a non-AES block")
	}
}
