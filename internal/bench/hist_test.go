package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<20; v++ {
		b := bucket(v)
		if b != prev && b != prev+1 {
			t.Fatalf("value %d: bucket %d after %d", v, b, prev)
		}
		low, width := bucketRange(b)
		if v < low || v >= low+width {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, b, low, low+width)
		}
		prev = b
	}
	if b := bucket(math.MaxUint64); b != histBuckets-1 {
		t.Fatalf("the largest value is in bucket %d, want %d", b, histBuckets-1)
	}
}

// exactQuantile is the value of rank ceil(q*n) of sorted.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	r := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[r-1]
}

func TestQuantilesWithinBucketPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"uniform", "lognormal", "bimodal"} {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			var vals []time.Duration
			for i := range 100000 {
				var d time.Duration
				switch name {
				case "uniform":
					d = time.Duration(1 + rng.IntN(10_000_000))
				case "lognormal":
					d = time.Duration(math.Exp(11 + 1.5*rng.NormFloat64()))
				case "bimodal":
					d = 80 * time.Microsecond
					if i%100 == 0 {
						d = 40 * time.Millisecond
					}
					d += time.Duration(rng.IntN(1000))
				}
				h.Record(d)
				vals = append(vals, d)
			}
			slices.Sort(vals)
			for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
				want, got := exactQuantile(vals, q), h.Quantile(q)
				if diff := math.Abs(float64(got-want)) / float64(want); diff > 1.0/64 {
					t.Errorf("q%v = %v, exact %v: off by %.2f%%", q, got, want, 100*diff)
				}
			}
			if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] || h.Count() != uint64(len(vals)) {
				t.Errorf("min %v max %v count %d, want %v %v %d", h.Min(), h.Max(), h.Count(), vals[0], vals[len(vals)-1], len(vals))
			}
			var sum float64
			for _, v := range vals {
				sum += float64(v)
			}
			if mean := time.Duration(math.Round(sum / float64(len(vals)))); h.Mean() != mean {
				t.Errorf("mean %v, want %v", h.Mean(), mean)
			}
		})
	}
}

func TestQuantileSmallCounts(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Max() != 0 {
		t.Fatal("an empty histogram reports a value")
	}
	h.Record(123456 * time.Nanosecond)
	for _, q := range []float64{0, 0.5, 0.999, 1} {
		if got := h.Quantile(q); got != 123456 {
			t.Errorf("one value: q%v = %v, want it exactly (clamped to min and max)", q, got)
		}
	}
	h.Record(-time.Second) // a clock step back counts as zero
	if h.Min() != 0 || h.Quantile(0.5) != 0 || h.Quantile(1) != 123456 {
		t.Errorf("min %v, p50 %v, p100 %v", h.Min(), h.Quantile(0.5), h.Quantile(1))
	}
	// p99.9 of 10 values is the largest: ceil(0.999*10) = 10.
	var g Histogram
	for i := 1; i <= 10; i++ {
		g.Record(time.Duration(i) * time.Millisecond)
	}
	if got := g.Quantile(0.999); got != 10*time.Millisecond {
		t.Errorf("p99.9 of 1..10 ms = %v, want 10ms", got)
	}
	if got := g.Quantile(0.5); math.Abs(float64(got-5*time.Millisecond)) > float64(5*time.Millisecond)/64 {
		t.Errorf("p50 of 1..10 ms = %v, want 5ms", got)
	}
}

func TestMergeEqualsOneHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all, a, b Histogram
	for i := range 20000 {
		d := time.Duration(rng.ExpFloat64() * 1e6)
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&Histogram{}) // merging an empty one changes nothing
	m.Merge(&a)
	m.Merge(&b)
	if m.counts != all.counts || m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() {
		t.Fatal("merged histogram differs from the one that recorded everything")
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		if m.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v: merged %v, one %v", q, m.Quantile(q), all.Quantile(q))
		}
	}
}

// Min is the smallest value recorded (exact); the reports print quantiles.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }
