package mech

import (
	"bytes"
	"crypto"
	"testing"
)

// RFC 2202 / RFC 4231 test cases 1 ("Hi There") and 2 ("Jefe").
func TestHMACKnownAnswers(t *testing.T) {
	key1 := unhex(t, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b")
	msg1 := []byte("Hi There")
	key2, msg2 := []byte("Jefe"), []byte("what do ya want for nothing?")
	tests := []struct {
		name     string
		h        crypto.Hash
		key, msg []byte
		mac      string
	}{
		{"SHA-1 TC1", crypto.SHA1, key1, msg1, "b617318655057264e28bc0b6fb378c8ef146be00"},
		{"SHA-1 TC2", crypto.SHA1, key2, msg2, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
		{"SHA-224 TC1", crypto.SHA224, key1, msg1, "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22"},
		{"SHA-224 TC2", crypto.SHA224, key2, msg2, "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"},
		{"SHA-256 TC1", crypto.SHA256, key1, msg1, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{"SHA-256 TC2", crypto.SHA256, key2, msg2, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{"SHA-384 TC1", crypto.SHA384, key1, msg1, "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"},
		{"SHA-384 TC2", crypto.SHA384, key2, msg2, "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"},
		{"SHA-512 TC1", crypto.SHA512, key1, msg1, "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
		{"SHA-512 TC2", crypto.SHA512, key2, msg2, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.mac)
			got, err := SignHMAC(tt.h, tt.key, tt.msg, tt.h.Size())
			skipRefusedByFIPSOnly(t, err)
			wantBytes(t, got, want)
			if err := VerifyHMAC(tt.h, tt.key, tt.msg, want, tt.h.Size()); err != nil {
				t.Fatal(err)
			}
			m, err := NewHMAC(tt.h, tt.key) // streaming, byte at a time
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.msg {
				m.Write(tt.msg[i : i+1])
			}
			if err := VerifyMAC(m, want, tt.h.Size()); err != nil {
				t.Fatal(err)
			}
			got, err = SumMAC([]byte("p"), m, tt.h.Size())
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, got, append([]byte("p"), want...))
			// General (truncated) lengths are prefixes.
			for n := 1; n <= tt.h.Size(); n++ {
				got, err := SignHMAC(tt.h, tt.key, tt.msg, n)
				if err != nil {
					t.Fatal(err)
				}
				wantBytes(t, got, want[:n])
				if err := VerifyHMAC(tt.h, tt.key, tt.msg, want[:n], n); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestHMACFailures(t *testing.T) {
	key, msg := testBytes(1, 32), testBytes(2, 100)
	mac, err := SignHMAC(crypto.SHA256, key, msg, 32)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(mac)
	bad[31] ^= 1
	tests := []struct {
		name   string
		h      crypto.Hash
		key    []byte
		msg    []byte
		mac    []byte
		macLen int
		want   error
	}{
		{"flipped bit", crypto.SHA256, key, msg, bad, 32, ErrSignatureInvalid},
		{"other key", crypto.SHA256, testBytes(3, 32), msg, mac, 32, ErrSignatureInvalid},
		{"other message", crypto.SHA256, key, msg[1:], mac, 32, ErrSignatureInvalid},
		{"other hash", crypto.SHA512, key, msg, mac, 32, ErrSignatureInvalid},
		{"short mac", crypto.SHA256, key, msg, mac[:31], 32, ErrSignatureLen},
		{"long mac", crypto.SHA256, key, msg, append(bytes.Clone(mac), 0), 32, ErrSignatureLen},
		{"truncated vs full", crypto.SHA256, key, msg, mac[:16], 32, ErrSignatureLen},
		{"macLen 0", crypto.SHA256, key, msg, nil, 0, ErrParam},
		{"macLen 33", crypto.SHA256, key, msg, mac, 33, ErrParam},
		{"MD5", crypto.MD5, key, msg, mac, 16, ErrParam},
		{"hash 0", 0, key, msg, mac, 16, ErrParam},
		{"SHA-512/256", crypto.SHA512_256, key, msg, mac, 32, ErrParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyHMAC(tt.h, tt.key, tt.msg, tt.mac, tt.macLen)
			wantErr(t, err, tt.want)
		})
	}
	_, err = SignHMAC(crypto.MD5, key, msg, 16)
	wantErr(t, err, ErrParam)
	_, err = SignHMAC(crypto.SHA256, key, msg, 0)
	wantErr(t, err, ErrParam)
}
