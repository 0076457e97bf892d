package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestZZBatchSize(t *testing.T) {
	for _, writers := range []int{1, 4, 16, 64} {
		s, _ := newTestStore(t, 1, newMK(t))
		ctx := context.Background()
		data := make([]byte, 256)
		var wg sync.WaitGroup
		start := time.Now()
		const per = 4000
		n := per
		for w := range writers {
			wg.Go(func() {
				for i := 0; i < n/writers; i++ {
					if _, err := s.Put(ctx, KindObject, fmt.Sprintf("w%03d-%08d", w, i), data); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		st := s.db.Stats()
		t.Logf("writers=%d ops/s=%.0f txs=%d avg batch=%.1f", writers, float64(n)/el.Seconds(), st.TxStats.GetWrite(), float64(n)/float64(st.TxStats.GetWrite()))
	}
}
