package mech

import (
	"crypto"
	"crypto/elliptic"
	"testing"
)

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkAESGCMSeal1K(b *testing.B) {
	blk := mustAES(b, testBytes(1, 32))
	iv, pt := testBytes(2, 12), testBytes(3, 1024)
	dst := make([]byte, 0, 2048)
	b.Run("SealGCM", func(b *testing.B) {
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := SealGCM(dst, blk, iv, 16, pt, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached AEAD", func(b *testing.B) {
		a, err := NewGCM(blk, 12, 16)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			a.Seal(dst, iv, pt, nil)
		}
	})
}

func BenchmarkAESCBC1K(b *testing.B) {
	blk := mustAES(b, testBytes(1, 32))
	iv, pt := testBytes(2, 16), testBytes(3, 1024)
	dst := make([]byte, 0, 2048)
	b.Run("encrypt", func(b *testing.B) {
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncryptCBC(dst, blk, iv, pt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decrypt CBC-PAD", func(b *testing.B) {
		ct, _ := EncryptCBCPad(nil, blk, iv, pt)
		b.SetBytes(int64(len(ct)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecryptCBCPad(dst, blk, iv, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("multipart 4x256", func(b *testing.B) {
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			m, err := NewMultipart(blk, ModeCBC, Encrypt, iv, 0)
			if err != nil {
				b.Fatal(err)
			}
			out := dst
			for i := 0; i < len(pt); i += 256 {
				out, _ = m.Update(out, pt[i:i+256])
			}
			if _, err := m.Final(out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkHMACSHA256_1K(b *testing.B) {
	key, msg := testBytes(1, 32), testBytes(2, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignHMAC(crypto.SHA256, key, msg, 32); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCMAC1K(b *testing.B) {
	blk := mustAES(b, testBytes(1, 32))
	msg := testBytes(2, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignCMAC(blk, msg, CMACSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKWWrap32(b *testing.B) {
	blk := mustAES(b, testBytes(1, 32))
	key := testBytes(2, 32)
	dst := make([]byte, 0, 64)
	b.SetBytes(int64(len(key)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WrapKW(dst, blk, nil, key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRSA2048Sign(b *testing.B) {
	k := testRSAKey(b, 2048)
	d := mustDigest(b, crypto.SHA256, []byte("m"))
	b.Run("PKCS1v15", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := SignPKCS1v15(k, crypto.SHA256, d); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
	b.Run("PSS", func(b *testing.B) {
		p := PSSParams{Hash: crypto.SHA256, MGF: crypto.SHA256, SaltLen: 32}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := SignPSS(nil, k, p, d); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
	b.Run("PKCS1v15 verify", func(b *testing.B) {
		sig, _ := SignPKCS1v15(k, crypto.SHA256, d)
		b.ReportAllocs()
		for b.Loop() {
			if err := VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d, sig); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
}

func BenchmarkECDSAP256(b *testing.B) {
	k := testECKey(b, elliptic.P256())
	d := mustDigest(b, crypto.SHA256, []byte("m"))
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := SignECDSA(nil, k, d); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
	b.Run("verify", func(b *testing.B) {
		sig, _ := SignECDSA(nil, k, d)
		b.ReportAllocs()
		for b.Loop() {
			if err := VerifyECDSA(&k.PublicKey, d, sig); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
}

func BenchmarkEd25519Sign(b *testing.B) {
	k, err := GenerateEd25519(nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := testBytes(1, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignEd25519(k, msg); err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b)
}
