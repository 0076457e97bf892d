package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/cryptoki"
)

// BenchmarkCryptokiDirect runs HMAC-SHA256 1 KiB and ECDSA P-256 through
// internal/cryptoki in this process, without the C boundary, against the
// same cluster as BenchmarkPKCS11/coffer: the difference between the two is
// what calling Go from C threads costs (each callback's goroutine is locked
// to its C thread, so every wait for the network hands the P off and back).
func BenchmarkCryptokiDirect(b *testing.B) {
	if env.err != nil {
		b.Fatalf("test cluster: %v", env.err)
	}
	f, err := client.ReadFile(env.config)
	must(b, "read the configuration", err)
	cfg, err := f.Config(nil)
	must(b, "client configuration", err)
	ctx := context.Background()
	m, err := cryptoki.New(ctx, cryptoki.Config{Handles: &cryptoki.Handles{}, Slots: []cryptoki.SlotConfig{{
		ClusterID: f.ClusterID,
		Dial: func(ctx context.Context) (cryptoki.Cluster, error) {
			c, err := client.Dial(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return cryptoki.ClientCluster(c), nil
		},
	}}})
	must(b, "cryptoki.New", err)
	defer m.Close(ctx)
	anchor, rv := m.OpenSession(0, ck.CKF_SERIAL_SESSION|ck.CKF_RW_SESSION)
	if rv != ck.CKR_OK {
		b.Fatal(rv)
	}
	if rv := m.Login(ctx, anchor, ck.CKU_USER, []byte(userPIN)); rv != ck.CKR_OK {
		b.Fatal(rv)
	}
	hmacKey, rv := m.GenerateKey(ctx, anchor, client.Mechanism{Type: ck.CKM_GENERIC_SECRET_KEY_GEN}, []client.Attribute{
		client.Bool(ck.CKA_TOKEN, true), client.Bool(ck.CKA_SIGN, true), {Type: ck.CKA_VALUE_LEN, Value: ulong(32)},
	})
	if rv != ck.CKR_OK {
		b.Fatal(rv)
	}
	defer m.DestroyObject(ctx, anchor, hmacKey)
	kib, out := make([]byte, 1024), make([]byte, 64)
	for _, threads := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("HMAC-SHA256-1KiB-sign/threads=%d", threads), func(b *testing.B) {
			var (
				next  atomic.Int64
				wg    sync.WaitGroup
				first atomic.Value
			)
			sessions := make([]cryptoki.SessionHandle, threads)
			for i := range sessions {
				sessions[i], _ = m.OpenSession(0, ck.CKF_SERIAL_SESSION|ck.CKF_RW_SESSION)
			}
			b.ResetTimer()
			for _, s := range sessions {
				wg.Go(func() {
					out := make([]byte, len(out))
					for next.Add(1) <= int64(b.N) {
						if rv := m.Init(ctx, s, cryptoki.OpSign, client.Mechanism{Type: ck.CKM_SHA256_HMAC}, hmacKey); rv != ck.CKR_OK {
							first.Store(rv)
							return
						}
						if _, rv := m.Single(ctx, s, cryptoki.OpSign, kib, out, false); rv != ck.CKR_OK {
							first.Store(rv)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if rv := first.Load(); rv != nil {
				b.Fatal(rv)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			for _, s := range sessions {
				m.CloseSession(ctx, s)
			}
		})
	}
}
