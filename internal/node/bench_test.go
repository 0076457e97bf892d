package node

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// BenchmarkRPC measures operations through the generated gRPC client over
// real TLS 1.3 on loopback, with 1 and 8 concurrent callers sharing one
// connection, each in its own logged-in session. It reports ops/s.
func BenchmarkRPC(b *testing.B) {
	pki := newTestPKI(b, "cluster-bench")
	n := start(b, config(b, pki, 1, MasterKeyCreate))
	eventually(b, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(b, pki, n.Addr()))
	activate(b, c)
	ctx := b.Context()
	s := cuSession(b, c)

	ec, err := ecPair(b, c, s, true, 0)
	if err != nil {
		b.Fatal(err)
	}
	aes, err := aesKey(b, c, s, true, 0)
	if err != nil {
		b.Fatal(err)
	}
	rsa, err := c.GenerateKeyPair(ctx, &hsmv1.GenerateKeyPairRequest{Session: s, Mechanism: mechOf(ck.CKM_RSA_PKCS_KEY_PAIR_GEN),
		PublicTemplate:  []*hsmv1.Attribute{ulongAttr(ck.CKA_MODULUS_BITS, 2048), boolAttr(ck.CKA_TOKEN, true)},
		PrivateTemplate: []*hsmv1.Attribute{boolAttr(ck.CKA_TOKEN, true)}})
	if err != nil {
		b.Fatal(err)
	}
	hmac, err := c.GenerateKey(ctx, &hsmv1.GenerateKeyRequest{Session: s, Mechanism: mechOf(ck.CKM_GENERIC_SECRET_KEY_GEN),
		Template: []*hsmv1.Attribute{ulongAttr(ck.CKA_VALUE_LEN, 32), boolAttr(ck.CKA_TOKEN, true)}})
	if err != nil {
		b.Fatal(err)
	}
	digest, kib := make([]byte, 32), make([]byte, 1024)
	gcm := &hsmv1.Mechanism{Type: uint64(ck.CKM_AES_GCM), Iv: make([]byte, 12), TagBits: 128}

	for _, op := range []struct {
		name string
		call func(s uint64) error
	}{
		{"ECDSA-P256-sign", func(s uint64) error {
			_, err := c.Sign(ctx, &hsmv1.CryptRequest{Session: s, Key: ec.GetPrivateKey(), Mechanism: mechOf(ck.CKM_ECDSA), Data: digest})
			return err
		}},
		{"AES-GCM-1KiB", func(s uint64) error {
			_, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: s, Key: aes.GetObject(), Mechanism: gcm, Data: kib})
			return err
		}},
		{"RSA-2048-sign", func(s uint64) error {
			_, err := c.Sign(ctx, &hsmv1.CryptRequest{Session: s, Key: rsa.GetPrivateKey(), Mechanism: mechOf(ck.CKM_SHA256_RSA_PKCS), Data: digest})
			return err
		}},
		{"HMAC-SHA256-1KiB", func(s uint64) error {
			_, err := c.Sign(ctx, &hsmv1.CryptRequest{Session: s, Key: hmac.GetObject(), Mechanism: mechOf(ck.CKM_SHA256_HMAC), Data: kib})
			return err
		}},
	} {
		for _, callers := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/callers=%d", op.name, callers), func(b *testing.B) {
				sessions := make([]uint64, callers)
				for i := range sessions {
					sessions[i] = cuSession(b, c)
				}
				if err := op.call(sessions[0]); err != nil {
					b.Fatal(err)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				begin := time.Now()
				for _, s := range sessions {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := op.call(s); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "ops/s")
			})
		}
	}
}
