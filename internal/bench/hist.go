package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records latencies in logarithmic buckets, HDR style: values
// below 2^(subBits+1) ns are exact, larger ones fall in one of 2^subBits
// buckets per power of two, so a percentile is within 1/64 (1.6%) of the
// true value. Its size is fixed (about 30 KiB) whatever it records. A
// Histogram is used by one goroutine at a time; Merge combines them.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64 // ns
	min    uint64
	max    uint64
}

const (
	subBits     = 6
	subCount    = 1 << subBits // buckets per power of two
	histBuckets = (64-subBits)*subCount + subCount
)

// bucket is the index of value v (ns).
func bucket(v uint64) int {
	shift := bits.Len64(v) - (subBits + 1)
	if shift <= 0 {
		return int(v)
	}
	return shift*subCount + int(v>>uint(shift))
}

// bucketRange is the smallest value of bucket i and its width.
func bucketRange(i int) (low, width uint64) {
	if i < 2*subCount {
		return uint64(i), 1
	}
	shift := uint(i/subCount - 1)
	top := uint64(i%subCount + subCount)
	return top << shift, 1 << shift
}

// Record adds one latency; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucket(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest value recorded (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average value recorded (exact).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(math.Round(h.sum / float64(h.n)))
}

// Quantile is the value at or below which a fraction q (0 to 1) of the
// values lie: the middle of the bucket holding the value of rank
// ceil(q*n), kept within the exact minimum and maximum (and exactly those
// for the first and last rank). It is 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.n)))
	switch {
	case rank >= h.n:
		return time.Duration(h.max) // the largest and smallest are exact
	case rank <= 1:
		return time.Duration(h.min)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		low, width := bucketRange(i)
		v := low + (width-1)/2
		return time.Duration(min(max(v, h.min), h.max))
	}
	return time.Duration(h.max)
}
