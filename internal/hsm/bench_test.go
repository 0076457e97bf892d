package hsm

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/ck"
)

// The device benchmarks measure the device API alone (no network), each
// beside the same operation done directly with Go's crypto, so the cost of
// policy, lookup and audit is visible. They report ops/s.

func opsPerSec(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

type benchDevice struct {
	td *testDevice
	s  SessionID
	k  keys
}

// newBenchDevice audits to a real hash-chained log, as a node does, so
// the figures include the audit cost.
func newBenchDevice(b *testing.B) benchDevice {
	log, err := audit.Open(b.Context(), audit.Config{Path: filepath.Join(b.TempDir(), "audit.log")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { log.Close() })
	td, admin := activate(b, newDeviceWith(b, Config{Audit: log}))
	s := withCU(b, td, admin, "bench")
	return benchDevice{td, s, makeKeys(b, td, s)}
}

func (bd benchDevice) run(b *testing.B, op func() error) {
	b.ReportAllocs()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	opsPerSec(b)
}

func BenchmarkAESGCM1K(b *testing.B) {
	bd := newBenchDevice(b)
	msg := make([]byte, 1024)
	iv := make([]byte, 12)
	m := Mechanism{Type: ck.CKM_AES_GCM, IV: iv, TagBits: 128}
	b.Run("device", func(b *testing.B) {
		b.SetBytes(1024)
		bd.run(b, func() error { _, err := bd.td.Encrypt(bd.s, bd.k.aes, m, msg); return err })
	})
	b.Run("go", func(b *testing.B) {
		b.SetBytes(1024)
		key := make([]byte, 32)
		bd.run(b, func() error {
			blk, _ := aes.NewCipher(key)
			g, _ := cipher.NewGCM(blk)
			g.Seal(nil, iv, msg, nil)
			return nil
		})
	})
}

func BenchmarkAESCBC1K(b *testing.B) {
	bd := newBenchDevice(b)
	msg := make([]byte, 1024)
	iv := make([]byte, 16)
	m := Mechanism{Type: ck.CKM_AES_CBC_PAD, IV: iv}
	b.Run("device", func(b *testing.B) {
		b.SetBytes(1024)
		bd.run(b, func() error { _, err := bd.td.Encrypt(bd.s, bd.k.aes, m, msg); return err })
	})
	b.Run("go", func(b *testing.B) {
		b.SetBytes(1024)
		blk, _ := aes.NewCipher(make([]byte, 32))
		bd.run(b, func() error {
			out := make([]byte, 1040)
			copy(out, msg)
			cipher.NewCBCEncrypter(blk, iv).CryptBlocks(out, out)
			return nil
		})
	})
}

func BenchmarkHMACSHA2561K(b *testing.B) {
	bd := newBenchDevice(b)
	msg := make([]byte, 1024)
	m := Mechanism{Type: ck.CKM_SHA256_HMAC}
	b.Run("device", func(b *testing.B) {
		b.SetBytes(1024)
		bd.run(b, func() error { _, err := bd.td.Sign(bd.s, bd.k.hmac, m, msg); return err })
	})
	b.Run("go", func(b *testing.B) {
		b.SetBytes(1024)
		key := make([]byte, 32)
		bd.run(b, func() error { h := hmac.New(sha256.New, key); h.Write(msg); h.Sum(nil); return nil })
	})
}

func BenchmarkAESCMAC1K(b *testing.B) {
	bd := newBenchDevice(b)
	msg := make([]byte, 1024)
	b.SetBytes(1024)
	bd.run(b, func() error { _, err := bd.td.Sign(bd.s, bd.k.aes, Mechanism{Type: ck.CKM_AES_CMAC}, msg); return err })
}

func BenchmarkSHA2561K(b *testing.B) {
	bd := newBenchDevice(b)
	msg := make([]byte, 1024)
	b.Run("device", func(b *testing.B) {
		b.SetBytes(1024)
		bd.run(b, func() error { _, err := bd.td.Digest(bd.s, Mechanism{Type: ck.CKM_SHA256}, msg); return err })
	})
	b.Run("go", func(b *testing.B) {
		b.SetBytes(1024)
		bd.run(b, func() error { sha256.Sum256(msg); return nil })
	})
}

func BenchmarkRSA2048Sign(b *testing.B) {
	bd := newBenchDevice(b)
	msg := []byte("message to sign")
	b.Run("device/PKCS1-SHA256", func(b *testing.B) {
		bd.run(b, func() error {
			_, err := bd.td.Sign(bd.s, bd.k.rsaPriv, Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, msg)
			return err
		})
	})
	b.Run("device/PSS-SHA256", func(b *testing.B) {
		m := Mechanism{Type: ck.CKM_SHA256_RSA_PKCS_PSS, Hash: ck.CKM_SHA256, MGF: ck.CKG_MGF1_SHA256, SaltLen: 32}
		bd.run(b, func() error { _, err := bd.td.Sign(bd.s, bd.k.rsaPriv, m, msg); return err })
	})
	b.Run("go/PKCS1-SHA256", func(b *testing.B) {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		bd.run(b, func() error {
			d := sha256.Sum256(msg)
			_, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:])
			return err
		})
	})
}

func BenchmarkECDSASign(b *testing.B) {
	bd := newBenchDevice(b)
	msg := []byte("message to sign")
	for _, c := range []struct {
		name  string
		key   ObjectID
		curve elliptic.Curve
	}{{"P-256", bd.k.ecPriv, elliptic.P256()}, {"P-384", bd.k.p384Priv, elliptic.P384()}} {
		b.Run("device/"+c.name, func(b *testing.B) {
			bd.run(b, func() error { _, err := bd.td.Sign(bd.s, c.key, Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg); return err })
		})
		b.Run("go/"+c.name, func(b *testing.B) {
			k, _ := ecdsa.GenerateKey(c.curve, rand.Reader)
			bd.run(b, func() error {
				d := sha256.Sum256(msg)
				_, err := ecdsa.SignASN1(rand.Reader, k, d[:])
				return err
			})
		})
	}
}

func BenchmarkECDSAP256Verify(b *testing.B) {
	bd := newBenchDevice(b)
	msg := []byte("message to sign")
	sig, err := bd.td.Sign(bd.s, bd.k.ecPriv, Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg)
	if err != nil {
		b.Fatal(err)
	}
	bd.run(b, func() error { return bd.td.Verify(bd.s, bd.k.ecPub, Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg, sig) })
}

func BenchmarkEd25519Sign(b *testing.B) {
	bd := newBenchDevice(b)
	msg := []byte("message to sign")
	b.Run("device", func(b *testing.B) {
		bd.run(b, func() error { _, err := bd.td.Sign(bd.s, bd.k.edPriv, Mechanism{Type: ck.CKM_EDDSA}, msg); return err })
	})
	b.Run("go", func(b *testing.B) {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		bd.run(b, func() error { ed25519.Sign(k, msg); return nil })
	})
}

func BenchmarkAESKeyWrap(b *testing.B) {
	bd := newBenchDevice(b)
	target := genAES(b, bd.td, bd.s, "target")
	bd.run(b, func() error {
		_, err := bd.td.WrapKey(bd.s, bd.k.aes, Mechanism{Type: ck.CKM_AES_KEY_WRAP}, target)
		return err
	})
}

// BenchmarkGenerateAES measures key creation: session keys in memory, and
// token keys made durable in the sealed, fsync'd store (the figure the
// "durable token-key creation" yardstick compares).
func BenchmarkGenerateAES(b *testing.B) {
	bd := newBenchDevice(b)
	gen := Mechanism{Type: ck.CKM_AES_KEY_GEN}
	b.Run("session", func(b *testing.B) {
		bd.run(b, func() error {
			_, err := bd.td.GenerateKey(b.Context(), bd.s, gen, Template{Ulong(ck.CKA_VALUE_LEN, 32)})
			return err
		})
	})
	b.Run("token-durable", func(b *testing.B) {
		st := openSealed(b, b.TempDir())
		defer st.Close()
		d, err := New(b.Context(), Config{Store: sealedStore{st}, Audit: &memAudit{}, Password: testCost})
		if err != nil {
			b.Fatal(err)
		}
		td := &testDevice{Device: d}
		ctx := b.Context()
		admin := td.OpenSession()
		if err := td.Login(ctx, admin, RoleAdmin, DefaultAdminName, DefaultPreAdminPIN); err != nil {
			b.Fatal(err)
		}
		if err := td.Activate(ctx, admin, adminPW); err != nil {
			b.Fatal(err)
		}
		s := withCU(b, td, admin, "bench")
		tmpl := Template{Ulong(ck.CKA_VALUE_LEN, 32), Bool(ck.CKA_TOKEN, true)}
		bd.run(b, func() error { _, err := td.GenerateKey(ctx, s, gen, tmpl); return err })
	})
}

func BenchmarkGenerateECP256(b *testing.B) {
	bd := newBenchDevice(b)
	pub := Template{Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))}
	bd.run(b, func() error {
		_, _, err := bd.td.GenerateKeyPair(b.Context(), bd.s, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN}, pub, nil)
		return err
	})
}
