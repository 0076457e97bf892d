package store

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestVersionCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b Version
		want int
	}{
		{"equal", Version{5, 1, 2}, Version{5, 1, 2}, 0},
		{"wall first", Version{4, 9, 9}, Version{5, 0, 0}, -1},
		{"then logical", Version{5, 2, 0}, Version{5, 1, 9}, 1},
		{"then node", Version{5, 1, 1}, Version{5, 1, 2}, -1},
		{"negative wall", Version{-1, 0, 0}, Version{0, 0, 1}, -1},
		{"zero is least", Version{}, Version{Node: 1}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Compare(tc.b); got != tc.want {
				t.Fatalf("%v.Compare(%v) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := tc.b.Compare(tc.a); got != -tc.want {
				t.Fatalf("%v.Compare(%v) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
		})
	}
	if !(Version{}).IsZero() || (Version{Logical: 1}).IsZero() {
		t.Fatal("IsZero wrong")
	}
}

// scriptedTime returns the given wall times in turn, then the last forever.
func scriptedTime(ns ...int64) func() time.Time {
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := time.Unix(0, ns[0])
		if len(ns) > 1 {
			ns = ns[1:]
		}
		return t
	}
}

func TestClockMonotonic(t *testing.T) {
	tests := []struct {
		name    string
		times   []int64
		observe *Version // observed before the first Now
		first   Version  // expected first reading
	}{
		{"steady", []int64{100, 200, 300}, nil, Version{100, 0, 4}},
		{"stalls", []int64{100, 100, 100, 100}, nil, Version{100, 0, 4}},
		{"goes backwards", []int64{1000, 900, 500, 1000, 1001, 2, 3000}, nil, Version{1000, 0, 4}},
		{"peer ahead", []int64{100, 100, 200}, &Version{500, 3, 1}, Version{500, 4, 4}},
		{"peer behind", []int64{100, 150}, &Version{50, 9, 1}, Version{100, 0, 4}},
		{"counter exhausted", []int64{10, 10, 10}, &Version{500, math.MaxUint32, 1}, Version{501, 0, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClock(4, scriptedTime(tc.times...))
			if tc.observe != nil {
				c.Observe(*tc.observe)
			}
			prev := c.Now()
			if prev != tc.first {
				t.Fatalf("first Now = %v, want %v", prev, tc.first)
			}
			if tc.observe != nil && prev.Compare(*tc.observe) <= 0 {
				t.Fatalf("Now %v not after observed %v", prev, *tc.observe)
			}
			for i := range 2 * len(tc.times) {
				v := c.Now()
				if v.Compare(prev) <= 0 || v.Node != 4 {
					t.Fatalf("reading %d: %v not after %v", i, v, prev)
				}
				prev = v
			}
		})
	}
}

func TestClockObserveNeverGoesBack(t *testing.T) {
	c := NewClock(1, scriptedTime(1000))
	a := c.Now()
	c.Observe(Version{Wall: 10, Logical: 99, Node: 7})
	if b := c.Now(); b.Compare(a) <= 0 {
		t.Fatalf("after observing an old version, %v not after %v", b, a)
	}
}

func TestClockConcurrent(t *testing.T) {
	c := NewClock(2, scriptedTime(5, 4, 3, 2, 1)) // time runs backwards, then stops
	const goroutines, each = 8, 500
	out := make([][]Version, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if i%50 == 0 {
					c.Observe(Version{Wall: 3, Logical: uint32(i), Node: 1})
				}
				out[g] = append(out[g], c.Now())
			}
		})
	}
	wg.Wait()
	seen := map[Version]bool{}
	for _, vs := range out {
		for i, v := range vs {
			if seen[v] {
				t.Fatalf("version %v issued twice", v)
			}
			seen[v] = true
			if i > 0 && v.Compare(vs[i-1]) <= 0 {
				t.Fatalf("goroutine saw %v after %v", v, vs[i-1])
			}
		}
	}
}
