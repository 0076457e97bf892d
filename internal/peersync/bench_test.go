package peersync_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
)

// BenchmarkConvergence measures, over the in-memory transport with 3 nodes,
// the time from a Put on node 1 (Put returned, then Notify) to the record
// being applied on both other nodes, and reports p50/p99. "sequential" puts
// one record at a time; "burst" puts records from 8 writers at once (batching
// and coalescing at work). Anti-entropy is an hour away: this is the push path.
// Run with e.g. -benchtime=200x.
func BenchmarkConvergence(b *testing.B) {
	for _, tc := range []struct {
		name    string
		writers int
	}{
		{"sequential", 1},
		{"burst", 8},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var (
				mu      sync.Mutex
				seen    = map[string]int{}           // id -> peers that applied it
				arrived = map[string]chan struct{}{} // closed when both did
			)
			c := newCluster(b, clusterOpts{nodes: 3, interval: time.Hour, onApply: func(_ uint32, rec store.Sealed) {
				mu.Lock()
				defer mu.Unlock()
				seen[rec.ID]++
				if seen[rec.ID] == 2 {
					close(arrived[rec.ID])
				}
			}})
			c.run()
			for _, n := range c.nodes {
				if err := n.sy.WaitReady(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, b.N)
			var next sync.Mutex
			i := 0
			take := func() int {
				next.Lock()
				defer next.Unlock()
				i++
				return i - 1
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for range tc.writers {
				wg.Go(func() {
					for j := take(); j < b.N; j = take() {
						id := fmt.Sprintf("key-%d", j)
						ch := make(chan struct{})
						mu.Lock()
						arrived[id] = ch
						mu.Unlock()
						start := time.Now()
						if _, err := c.node(1).st.Put(b.Context(), store.KindObject, id, []byte("key material")); err != nil {
							b.Error(err)
							return
						}
						c.node(1).sy.Notify(peersync.Key{Kind: store.KindObject, ID: id})
						select {
						case <-ch:
						case <-b.Context().Done():
							return
						}
						lat[j] = time.Since(start)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
