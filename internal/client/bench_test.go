package client

import (
	"testing"
	"time"
)

// BenchmarkSignParallel measures the client's overhead per request (routing,
// balancing, gRPC over TLS) against three fake HSMs that answer at once.
func BenchmarkSignParallel(b *testing.B) {
	w, pki := newFakeCluster(b, 3)
	c, err := Dial(b.Context(), testConfig(w, pki))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s, err := c.Login(b.Context(), "crypto-user", fakeUser, fakePassword)
	if err != nil {
		b.Fatal(err)
	}
	key, err := s.GenerateKey(b.Context(), aesGen, tokenOn, MinNodes(3))
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 32)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Sign(b.Context(), key, hmac, data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}
