package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPut measures durable writes with 1 and 16 concurrent writers; the
// gap is group commit (16 writers share transactions and fsyncs).
func BenchmarkPut(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, _ := newTestStore(b, 1, newMK(b))
			ctx := context.Background()
			data := make([]byte, 256)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range writers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if _, err := s.Put(ctx, KindObject, fmt.Sprintf("key-%d", i), data); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
}

func BenchmarkGet(b *testing.B) {
	s, _ := newTestStore(b, 1, newMK(b))
	ctx := context.Background()
	const keys = 1000
	for i := range keys {
		mustPut(b, s, KindObject, fmt.Sprintf("key-%d", i), make([]byte, 256))
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := s.Get(ctx, KindObject, fmt.Sprintf("key-%d", i%keys)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}
