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

// BenchmarkCatchUp measures how fast a node that lacks records catches up
// with a peer that has them, over the in-memory transport with real stores
// (fsync on): "anti-entropy" is one round of the lagging node (digest,
// versions, fetch); "push" is the holder's send queue draining to it, as
// after a freeze; "catch-up" is the lagging node's CatchUp, which has the
// holder flush that queue at once. It reports records/s. Run with
// -benchtime=1x.
func BenchmarkCatchUp(b *testing.B) {
	const records = 20000
	for _, mode := range []string{"anti-entropy", "push", "catch-up"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				c := newCluster(b, clusterOpts{nodes: 2, interval: time.Hour})
				c.node(1).sy.SetQueueLimitForTest(4 * records)
				putMany(b, c.node(1).st, records)
				if mode == "push" {
					c.run(1)
				}
				if mode == "catch-up" { // queued while node 2 is away
					c.net.Isolate(2)
					c.run(1)
					for i := range records {
						c.node(1).sy.Notify(peersync.Key{Kind: store.KindObject, ID: fmt.Sprintf("rec-%06d", i)})
					}
					c.net.Rejoin(2)
				}
				b.StartTimer()
				start := time.Now()
				switch mode {
				case "anti-entropy":
					if err := c.node(2).sy.RoundForTest(b.Context()); err != nil {
						b.Fatal(err)
					}
				case "push":
					for i := range records {
						c.node(1).sy.Notify(peersync.Key{Kind: store.KindObject, ID: fmt.Sprintf("rec-%06d", i)})
					}
				case "catch-up":
					if err := c.node(2).sy.CatchUp(b.Context()); err != nil {
						b.Fatal(err)
					}
				}
				eventually(b, func() error {
					if n := c.node(2).appliedCount(); n < records {
						return fmt.Errorf("node 2 applied %d of %d", n, records)
					}
					return nil
				})
				b.ReportMetric(records/time.Since(start).Seconds(), "records/s")
			}
		})
	}
}

// putMany writes n object records rec-000000... to st, 64 writers at once
// (so the store's group commit shares the fsyncs).
func putMany(tb testing.TB, st *store.Store, n int) {
	tb.Helper()
	var wg sync.WaitGroup
	data := make([]byte, 200) // about an AES key's record
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < n; i += 64 {
				if _, err := st.Put(tb.Context(), store.KindObject, fmt.Sprintf("rec-%06d", i), data); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
