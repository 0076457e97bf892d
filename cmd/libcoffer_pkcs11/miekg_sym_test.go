package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"testing"

	"github.com/miekg/pkcs11"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// testAES checks ECB, CBC, CBC-PAD, CTR and GCM against crypto/cipher, in
// one part and in parts cut off block boundaries.
func testAES(t *testing.T, x *mechTest) {
	keyValue := unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
	key := x.secret(t, pkcs11.CKK_AES, keyValue)
	block, _ := aes.NewCipher(keyValue)
	iv := unhex("000102030405060708090a0b0c0d0e0f")
	data := bytes.Repeat([]byte("coffer: PKCS#11 through miekg. "), 3)[:93]
	data = append(data, "..."...) // 96 bytes
	odd := data[:77]

	ecb := func(in []byte) []byte {
		out := make([]byte, len(in))
		for i := 0; i < len(in); i += 16 {
			block.Encrypt(out[i:], in[i:i+16])
		}
		return out
	}
	cbc := func(in []byte) []byte {
		out := make([]byte, len(in))
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, in)
		return out
	}
	pkcs7 := func(in []byte) []byte {
		n := 16 - len(in)%16
		return append(bytes.Clone(in), bytes.Repeat([]byte{byte(n)}, n)...)
	}
	ctr := func(in []byte) []byte {
		out := make([]byte, len(in))
		cipher.NewCTR(block, iv).XORKeyStream(out, in)
		return out
	}
	gcm, _ := cipher.NewGCM(block)
	nonce, aad := iv[:12], []byte("associated data")

	ctrParams := append(ulong(128), iv...) // CK_AES_CTR_PARAMS
	tests := []struct {
		name  string
		mech  uint
		param func() any // a fresh parameter per call (GCM's is freed after use)
		in    []byte
		want  []byte
	}{
		{"ECB", pkcs11.CKM_AES_ECB, func() any { return nil }, data, ecb(data)},
		{"CBC", pkcs11.CKM_AES_CBC, func() any { return iv }, data, cbc(data)},
		{"CBC-PAD", pkcs11.CKM_AES_CBC_PAD, func() any { return iv }, odd, cbc(pkcs7(odd))},
		{"CTR", pkcs11.CKM_AES_CTR, func() any { return ctrParams }, odd, ctr(odd)},
		{"GCM", pkcs11.CKM_AES_GCM, func() any { return pkcs11.NewGCMParams(nonce, aad, 128) }, odd, gcm.Seal(nil, nonce, odd, aad)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := func() []*pkcs11.Mechanism {
				p := tc.param()
				if g, ok := p.(*pkcs11.GCMParams); ok {
					t.Cleanup(g.Free)
				}
				return mech(tc.mech, p)
			}
			if got := x.crypt(t, true, m(), key, tc.in); !bytes.Equal(got, tc.want) {
				t.Errorf("C_Encrypt = %x, want %x", got, tc.want)
			}
			if got := x.crypt(t, false, m(), key, tc.want); !bytes.Equal(got, tc.in) {
				t.Errorf("C_Decrypt = %x, want %x", got, tc.in)
			}
			if got := x.cryptParts(t, true, m(), key, tc.in, 5, 37); !bytes.Equal(got, tc.want) {
				t.Errorf("multi-part encrypt = %x, want %x", got, tc.want)
			}
			if got := x.cryptParts(t, false, m(), key, tc.want, 16, 33); !bytes.Equal(got, tc.in) {
				t.Errorf("multi-part decrypt = %x, want %x", got, tc.in)
			}
			x.use(tc.mech)
		})
	}
	t.Run("GCM tag checked", func(t *testing.T) {
		p := pkcs11.NewGCMParams(nonce, aad, 128)
		defer p.Free()
		sealed := gcm.Seal(nil, nonce, odd, aad)
		sealed[0] ^= 1
		must(t, "C_DecryptInit", x.l.ctx.DecryptInit(x.s, mech(pkcs11.CKM_AES_GCM, p), key))
		_, err := x.l.ctx.Decrypt(x.s, sealed)
		wantRV(t, "C_Decrypt of altered ciphertext", err, pkcs11.CKR_ENCRYPTED_DATA_INVALID)
	})
}

// testAESKeyWrap checks RFC 3394 and RFC 5649 known answers through
// C_Encrypt, then wraps and unwraps a generated key.
func testAESKeyWrap(t *testing.T, x *mechTest) {
	tests := []struct {
		name         string
		mech         uint
		kek, in, out string
	}{
		{"KEY_WRAP RFC 3394 4.6", pkcs11.CKM_AES_KEY_WRAP,
			"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
			"00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f",
			"28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21"},
		{"KEY_WRAP_PAD RFC 5649", pkcs11.CKM_AES_KEY_WRAP_PAD,
			"5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
			"c37b7e6492584340bed12207808941155068f738",
			"138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kek := x.secret(t, pkcs11.CKK_AES, unhex(tc.kek))
			if got := x.crypt(t, true, mech(tc.mech, nil), kek, unhex(tc.in)); !bytes.Equal(got, unhex(tc.out)) {
				t.Errorf("C_Encrypt = %x, want %s", got, tc.out)
			}
			if got := x.crypt(t, false, mech(tc.mech, nil), kek, unhex(tc.out)); !bytes.Equal(got, unhex(tc.in)) {
				t.Errorf("C_Decrypt = %x, want %s", got, tc.in)
			}
			// The key to wrap is a token object: see TestSessionObjectsTogether.
			key := x.aesKey(t, true)
			wrapped, err := x.l.ctx.WrapKey(x.s, mech(tc.mech, nil), kek, key)
			must(t, "C_WrapKey", err)
			if len(wrapped) != 40 {
				t.Errorf("wrapped AES-256 key is %d bytes, want 40", len(wrapped))
			}
			back, err := x.l.ctx.UnwrapKey(x.s, mech(tc.mech, nil), kek, wrapped, []*pkcs11.Attribute{
				attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_ENCRYPT, true),
			})
			must(t, "C_UnwrapKey", err)
			x.sameAESKey(t, key, back)
			wrapped[3] ^= 1
			_, err = x.l.ctx.UnwrapKey(x.s, mech(tc.mech, nil), kek, wrapped, []*pkcs11.Attribute{
				attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES), attr(pkcs11.CKA_TOKEN, false),
			})
			if rvOf(err) != pkcs11.CKR_WRAPPED_KEY_INVALID && rvOf(err) != pkcs11.CKR_ENCRYPTED_DATA_INVALID {
				t.Errorf("C_UnwrapKey of an altered key: %v, want CKR_WRAPPED_KEY_INVALID", err)
			}
			x.use(tc.mech)
		})
	}
}

// testCMAC checks RFC 4493's AES-128 examples.
func testCMAC(t *testing.T, x *mechTest) {
	key := x.secret(t, pkcs11.CKK_AES, unhex("2b7e151628aed2a6abf7158809cf4f3c"))
	msg := unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411")
	want := unhex("dfa66747de9ae63030ca32611497c827")
	if got := x.sign(t, mech(pkcs11.CKM_AES_CMAC, nil), key, key, msg, false); !bytes.Equal(got, want) {
		t.Errorf("CMAC = %x, want %x", got, want)
	}
	if got := x.sign(t, mech(pkcs11.CKM_AES_CMAC, nil), key, key, msg, true); !bytes.Equal(got, want) {
		t.Errorf("multi-part CMAC = %x, want %x", got, want)
	}
	x.use(pkcs11.CKM_AES_CMAC)
	if got := x.sign(t, mech(pkcs11.CKM_AES_CMAC_GENERAL, ulong(8)), key, key, msg, false); !bytes.Equal(got, want[:8]) {
		t.Errorf("CMAC_GENERAL(8) = %x, want %x", got, want[:8])
	}
	x.use(pkcs11.CKM_AES_CMAC_GENERAL)
}

var hashes = []struct {
	name                 string
	digest, hmac, hmacGe uint
	new                  func() hash.Hash
}{
	{"SHA-1", pkcs11.CKM_SHA_1, pkcs11.CKM_SHA_1_HMAC, pkcs11.CKM_SHA_1_HMAC_GENERAL, sha1.New},
	{"SHA-224", pkcs11.CKM_SHA224, pkcs11.CKM_SHA224_HMAC, pkcs11.CKM_SHA224_HMAC_GENERAL, sha256.New224},
	{"SHA-256", pkcs11.CKM_SHA256, pkcs11.CKM_SHA256_HMAC, pkcs11.CKM_SHA256_HMAC_GENERAL, sha256.New},
	{"SHA-384", pkcs11.CKM_SHA384, pkcs11.CKM_SHA384_HMAC, pkcs11.CKM_SHA384_HMAC_GENERAL, sha512.New384},
	{"SHA-512", pkcs11.CKM_SHA512, pkcs11.CKM_SHA512_HMAC, pkcs11.CKM_SHA512_HMAC_GENERAL, sha512.New},
}

// testHMAC checks every HMAC against crypto/hmac, with an imported key and
// a generated one.
func testHMAC(t *testing.T, x *mechTest) {
	keyValue := []byte("an HMAC key of thirty-two bytes!")
	key := x.secret(t, pkcs11.CKK_GENERIC_SECRET, keyValue)
	gen, err := x.l.ctx.GenerateKey(x.s, mech(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil), []*pkcs11.Attribute{
		attr(pkcs11.CKA_VALUE_LEN, 32), attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_SIGN, true), attr(pkcs11.CKA_VERIFY, true),
	})
	must(t, "C_GenerateKey generic secret", err)
	x.use(pkcs11.CKM_GENERIC_SECRET_KEY_GEN)
	data := []byte("message authenticated by the token")
	for _, h := range hashes {
		t.Run(h.name, func(t *testing.T) {
			mac := hmac.New(h.new, keyValue)
			mac.Write(data)
			want := mac.Sum(nil)
			if got := x.sign(t, mech(h.hmac, nil), key, key, data, false); !bytes.Equal(got, want) {
				t.Errorf("HMAC = %x, want %x", got, want)
			}
			if got := x.sign(t, mech(h.hmac, nil), key, key, data, true); !bytes.Equal(got, want) {
				t.Errorf("multi-part HMAC = %x, want %x", got, want)
			}
			if got := x.sign(t, mech(h.hmacGe, ulong(12)), key, key, data, false); !bytes.Equal(got, want[:12]) {
				t.Errorf("HMAC_GENERAL(12) = %x, want %x", got, want[:12])
			}
			if got := x.sign(t, mech(h.hmac, nil), gen, gen, data, false); len(got) != len(want) {
				t.Errorf("HMAC with a generated key: %d bytes, want %d", len(got), len(want))
			}
			x.use(h.hmac)
			x.use(h.hmacGe)
		})
	}
}

func testDigest(t *testing.T, x *mechTest) {
	data := bytes.Repeat([]byte("digest me "), 50)
	for _, h := range hashes {
		t.Run(h.name, func(t *testing.T) {
			d := h.new()
			d.Write(data)
			want := d.Sum(nil)
			must(t, "C_DigestInit", x.l.ctx.DigestInit(x.s, mech(h.digest, nil)))
			got, err := x.l.ctx.Digest(x.s, data)
			must(t, "C_Digest", err)
			if !bytes.Equal(got, want) {
				t.Errorf("C_Digest = %x, want %x", got, want)
			}
			must(t, "C_DigestInit", x.l.ctx.DigestInit(x.s, mech(h.digest, nil)))
			must(t, "C_DigestUpdate", x.l.ctx.DigestUpdate(x.s, data[:7]))
			must(t, "C_DigestUpdate", x.l.ctx.DigestUpdate(x.s, data[7:]))
			got, err = x.l.ctx.DigestFinal(x.s)
			must(t, "C_DigestFinal", err)
			if !bytes.Equal(got, want) {
				t.Errorf("C_DigestFinal = %x, want %x", got, want)
			}
			x.use(h.digest)
		})
	}
}
