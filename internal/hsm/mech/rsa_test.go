package mech

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"testing"
)

var allHashes = []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512}

func TestGenerateRSA(t *testing.T) {
	for _, bits := range []int{2048, 3072, 4096} {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			k := testRSAKey(t, bits)
			if k.N.BitLen() != bits || k.E != RSAExponent {
				t.Fatalf("key has %d bits, e=%d", k.N.BitLen(), k.E)
			}
			if err := k.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, bits := range []int{0, 1024, 2047, 2049, 4097, 8192} {
		_, err := GenerateRSA(nil, bits, RSAExponent)
		var uke *UnsupportedKeyError
		if !errors.Is(err, ErrKeySize) || !errors.As(err, &uke) {
			t.Errorf("GenerateRSA(%d) = %v, want ErrKeySize", bits, err)
		}
	}
	for _, e := range []int{3, 17, 65535, 65539} {
		_, err := GenerateRSA(nil, 2048, e)
		wantErr(t, err, ErrParam)
	}
}

// digestInfo builds the DER DigestInfo for a SHA-256 digest (RFC 8017 §9.2).
func digestInfo(d []byte) []byte {
	prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	return append(prefix, d...)
}

func TestPKCS1v15Sign(t *testing.T) {
	for _, bits := range []int{2048, 3072, 4096} {
		k := testRSAKey(t, bits)
		pub := &k.PublicKey
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			msg := []byte("message to sign")
			for _, h := range allHashes {
				sig, err := SignPKCS1v15Hash(k, h, msg)
				if err != nil {
					t.Fatalf("%v: %v", h, err)
				}
				if len(sig) != bits/8 {
					t.Fatalf("signature of %d bytes", len(sig))
				}
				if err := VerifyPKCS1v15Hash(pub, h, msg, sig); err != nil {
					t.Fatalf("%v: %v", h, err)
				}
				if err := rsa.VerifyPKCS1v15(pub, h, mustDigest(t, h, msg), sig); err != nil {
					t.Fatalf("%v: standard library rejects: %v", h, err)
				}
				wantErr(t, VerifyPKCS1v15Hash(pub, h, []byte("other"), sig), ErrSignatureInvalid)
			}
			// Raw (CKM_RSA_PKCS): the caller's DigestInfo gives the same
			// signature as the hash form (PKCS #1 v1.5 is deterministic).
			d := mustDigest(t, crypto.SHA256, msg)
			raw, err := SignPKCS1v15(k, 0, digestInfo(d))
			if err != nil {
				t.Fatal(err)
			}
			withHash, err := SignPKCS1v15(k, crypto.SHA256, d)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes(t, raw, withHash)
			if err := VerifyPKCS1v15(pub, 0, digestInfo(d), raw); err != nil {
				t.Fatal(err)
			}
			// Raw input up to k-11 bytes.
			max := make([]byte, k.Size()-11)
			if _, err := SignPKCS1v15(k, 0, max); err != nil {
				t.Fatal(err)
			}
			_, err = SignPKCS1v15(k, 0, append(max, 0))
			wantErr(t, err, ErrDataLen)
		})
	}
}

func mustDigest(t testing.TB, h crypto.Hash, msg []byte) []byte {
	t.Helper()
	d, err := Digest(nil, h, msg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPKCS1v15VerifyFailures(t *testing.T) {
	k := testRSAKey(t, 2048)
	other := testRSAKey(t, 3072)
	d := mustDigest(t, crypto.SHA256, []byte("m"))
	sig, err := SignPKCS1v15(k, crypto.SHA256, d)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sig)
	flipped[10] ^= 1
	tests := []struct {
		name string
		pub  *rsa.PublicKey
		h    crypto.Hash
		d    []byte
		sig  []byte
		want error
	}{
		{"flipped", &k.PublicKey, crypto.SHA256, d, flipped, ErrSignatureInvalid},
		{"short", &k.PublicKey, crypto.SHA256, d, sig[1:], ErrSignatureLen},
		{"long", &k.PublicKey, crypto.SHA256, d, append(bytes.Clone(sig), 0), ErrSignatureLen},
		{"empty", &k.PublicKey, crypto.SHA256, d, nil, ErrSignatureLen},
		{"other key", &other.PublicKey, crypto.SHA256, d, sig, ErrSignatureLen},
		{"other hash", &k.PublicKey, crypto.SHA384, mustDigest(t, crypto.SHA384, []byte("m")), sig, ErrSignatureInvalid},
		{"raw without DigestInfo", &k.PublicKey, 0, d, sig, ErrSignatureInvalid},
		{"zero signature", &k.PublicKey, crypto.SHA256, d, make([]byte, 256), ErrSignatureInvalid},
		{"MD5", &k.PublicKey, crypto.MD5, d[:16], sig, ErrParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, VerifyPKCS1v15(tt.pub, tt.h, tt.d, tt.sig), tt.want)
		})
	}
	_, err = SignPKCS1v15(k, crypto.SHA256, d[:31])
	wantErr(t, err, ErrDataLen)
	_, err = SignPKCS1v15(k, crypto.MD5, d[:16])
	wantErr(t, err, ErrParam)
}

func TestPSS(t *testing.T) {
	for _, bits := range []int{2048, 3072, 4096} {
		k := testRSAKey(t, bits)
		pub := &k.PublicKey
		emLen := (bits + 6) / 8
		for _, h := range allHashes {
			if bits != 2048 && h != crypto.SHA256 {
				continue // every hash on one size is enough
			}
			for _, salt := range []int{1, 20, h.Size(), emLen - h.Size() - 2} {
				t.Run(fmt.Sprintf("%d/%v/salt%d", bits, h, salt), func(t *testing.T) {
					p := PSSParams{Hash: h, MGF: h, SaltLen: salt}
					msg := []byte("pss message")
					sig, err := SignPSSHash(nil, k, p, msg)
					if err != nil {
						t.Fatal(err)
					}
					if err := VerifyPSSHash(pub, p, msg, sig); err != nil {
						t.Fatal(err)
					}
					d := mustDigest(t, h, msg)
					if err := rsa.VerifyPSS(pub, h, d, sig, &rsa.PSSOptions{SaltLength: salt}); err != nil {
						t.Fatalf("standard library rejects: %v", err)
					}
					if err := VerifyPSS(pub, p, d, sig); err != nil {
						t.Fatal(err)
					}
					wantErr(t, VerifyPSSHash(pub, p, []byte("other"), sig), ErrSignatureInvalid)
					// The salt length is checked exactly.
					wrongSalt := PSSParams{Hash: h, MGF: h, SaltLen: salt + 1}
					if salt > 1 {
						wrongSalt.SaltLen = salt - 1
					}
					wantErr(t, VerifyPSS(pub, wrongSalt, d, sig), ErrSignatureInvalid)
					flipped := bytes.Clone(sig)
					flipped[0] ^= 0x40
					wantErr(t, VerifyPSS(pub, p, d, flipped), ErrSignatureInvalid)
					wantErr(t, VerifyPSS(pub, p, d, sig[1:]), ErrSignatureLen)
				})
			}
		}
	}
}

func TestPSSParams(t *testing.T) {
	k := testRSAKey(t, 2048)
	d := mustDigest(t, crypto.SHA256, []byte("m"))
	sig, err := SignPSS(rand.Reader, k, PSSParams{crypto.SHA256, crypto.SHA256, 32}, d)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    PSSParams
		d    []byte
		want error
	}{
		{"MGF1 mismatch", PSSParams{crypto.SHA256, crypto.SHA1, 32}, d, ErrParam},
		{"MGF1 mismatch 2", PSSParams{crypto.SHA256, crypto.SHA512, 32}, d, ErrParam},
		{"salt 0", PSSParams{crypto.SHA256, crypto.SHA256, 0}, d, ErrParam},
		{"salt -1", PSSParams{crypto.SHA256, crypto.SHA256, -1}, d, ErrParam},
		{"MD5", PSSParams{crypto.MD5, crypto.MD5, 16}, d[:16], ErrParam},
		{"short digest", PSSParams{crypto.SHA256, crypto.SHA256, 32}, d[:20], ErrDataLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SignPSS(nil, k, tt.p, tt.d)
			wantErr(t, err, tt.want)
			wantErr(t, VerifyPSS(&k.PublicKey, tt.p, tt.d, sig), tt.want)
			if tt.want == ErrParam {
				_, err = SignPSSHash(nil, k, tt.p, []byte("m"))
				wantErr(t, err, ErrParam)
				wantErr(t, VerifyPSSHash(&k.PublicKey, tt.p, []byte("m"), sig), ErrParam)
			}
		})
	}
	// Salt too long for the modulus.
	_, err = SignPSS(nil, k, PSSParams{crypto.SHA256, crypto.SHA256, 256 - 32 - 1}, d)
	wantErr(t, err, ErrParam)
}

func TestOAEP(t *testing.T) {
	for _, bits := range []int{2048, 3072, 4096} {
		k := testRSAKey(t, bits)
		pub := &k.PublicKey
		for _, h := range allHashes {
			for _, mgf := range []crypto.Hash{h, crypto.SHA1, crypto.SHA512} {
				if bits != 2048 && (h != crypto.SHA256 || mgf != h) {
					continue
				}
				for _, label := range [][]byte{nil, []byte("label")} {
					t.Run(fmt.Sprintf("%d/%v/MGF1-%v/label%d", bits, h, mgf, len(label)), func(t *testing.T) {
						p := OAEPParams{Hash: h, MGF: mgf, Label: label}
						maxLen := k.Size() - 2*h.Size() - 2
						for _, n := range []int{0, 1, 32, maxLen} {
							msg := testBytes(uint64(n), n)
							ct, err := EncryptOAEP(nil, pub, p, msg)
							if err != nil {
								t.Fatalf("n=%d: %v", n, err)
							}
							got, err := DecryptOAEP(k, p, ct)
							if err != nil {
								t.Fatalf("n=%d: %v", n, err)
							}
							wantBytes(t, got, msg)
						}
						_, err := EncryptOAEP(nil, pub, p, make([]byte, maxLen+1))
						wantErr(t, err, ErrDataLen)
					})
				}
			}
		}
	}
}

func TestOAEPFailures(t *testing.T) {
	k := testRSAKey(t, 2048)
	p := OAEPParams{Hash: crypto.SHA256, MGF: crypto.SHA256, Label: []byte("L")}
	ct, err := EncryptOAEP(nil, &k.PublicKey, p, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(ct)
	flipped[100] ^= 1
	tests := []struct {
		name string
		p    OAEPParams
		ct   []byte
		want error
	}{
		{"wrong label", OAEPParams{crypto.SHA256, crypto.SHA256, []byte("M")}, ct, ErrEncryptedDataInvalid},
		{"no label", OAEPParams{crypto.SHA256, crypto.SHA256, nil}, ct, ErrEncryptedDataInvalid},
		{"wrong hash", OAEPParams{crypto.SHA1, crypto.SHA256, []byte("L")}, ct, ErrEncryptedDataInvalid},
		{"wrong MGF", OAEPParams{crypto.SHA256, crypto.SHA1, []byte("L")}, ct, ErrEncryptedDataInvalid},
		{"flipped", p, flipped, ErrEncryptedDataInvalid},
		{"short", p, ct[1:], ErrDataLen},
		{"long", p, append(bytes.Clone(ct), 0), ErrDataLen},
		{"MD5", OAEPParams{crypto.MD5, crypto.SHA256, nil}, ct, ErrParam},
		{"MGF MD5", OAEPParams{crypto.SHA256, crypto.MD5, nil}, ct, ErrParam},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := DecryptOAEP(k, tt.p, tt.ct)
			wantErr(t, err, tt.want)
			if tt.want == ErrEncryptedDataInvalid && err != ErrEncryptedDataInvalid {
				t.Fatalf("decryption error %q is not the single sentinel", err)
			}
			if out != nil {
				t.Fatal("output on failure")
			}
		})
	}
	_, err = EncryptOAEP(nil, &k.PublicKey, OAEPParams{Hash: crypto.MD5, MGF: crypto.SHA1}, nil)
	wantErr(t, err, ErrParam)
}

func TestPKCS1v15Encrypt(t *testing.T) {
	for _, bits := range []int{2048, 3072, 4096} {
		k := testRSAKey(t, bits)
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			for _, n := range []int{0, 1, 16, 32, k.Size() - 11} {
				msg := testBytes(uint64(n), n)
				ct, err := EncryptPKCS1v15(nil, &k.PublicKey, msg)
				if err != nil {
					t.Fatal(err)
				}
				got, err := DecryptPKCS1v15(k, ct)
				if err != nil {
					t.Fatal(err)
				}
				wantBytes(t, got, msg)
			}
			_, err := EncryptPKCS1v15(nil, &k.PublicKey, make([]byte, k.Size()-10))
			wantErr(t, err, ErrDataLen)
		})
	}
	k := testRSAKey(t, 2048)
	ct, err := EncryptPKCS1v15(nil, &k.PublicKey, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	// Every failure is the same error value: no padding oracle in the API.
	flipped := bytes.Clone(ct)
	flipped[5] ^= 1
	oaep, err := EncryptOAEP(nil, &k.PublicKey, OAEPParams{Hash: crypto.SHA256, MGF: crypto.SHA256}, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string][]byte{"flipped": flipped, "zeros": make([]byte, 256), "OAEP": oaep, "random": testBytes(1, 256)} {
		out, err := DecryptPKCS1v15(k, c)
		if err != ErrEncryptedDataInvalid || out != nil {
			t.Errorf("%s: DecryptPKCS1v15 = %x, %v; want exactly ErrEncryptedDataInvalid", name, out, err)
		}
	}
	for _, n := range []int{0, 255, 257} {
		_, err := DecryptPKCS1v15(k, make([]byte, n))
		wantErr(t, err, ErrDataLen)
	}
}
