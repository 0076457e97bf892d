package controlplane

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestReplayCache(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sig := func(i int) [sha256.Size]byte { return sha256.Sum256(fmt.Appendf(nil, "signature %d", i)) }
	type step struct {
		sig  int
		at   time.Duration // after t0
		want error         // nil, ErrInvalidSignature (a replay) or ErrThrottled (full)
	}
	for _, c := range []struct {
		name  string
		max   int
		steps []step
		left  int // signatures remembered at the end
	}{
		{"first use", 4, []step{{1, 0, nil}, {2, 0, nil}}, 2},
		{"replay within the window", 4, []step{{1, 0, nil}, {1, replayWindow - time.Second, ErrInvalidSignature}}, 1},
		{"replay after the window", 4, []step{{1, 0, nil}, {1, replayWindow, nil}}, 1},
		{"full: new signatures wait", 2, []step{{1, 0, nil}, {2, time.Minute, nil}, {3, 2 * time.Minute, ErrThrottled},
			{1, 3 * time.Minute, ErrInvalidSignature}}, 2},
		{"full until the oldest expires", 2, []step{{1, 0, nil}, {2, time.Minute, nil}, {3, replayWindow, nil},
			{4, replayWindow, ErrThrottled}, {2, replayWindow + time.Minute, nil}}, 2},
		{"a clock stepping back forgets nothing", 4, []step{{1, time.Hour, nil}, {1, 0, ErrInvalidSignature}}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := newReplayCache(c.max)
			for i, s := range c.steps {
				err := rc.first(sig(s.sig), t0.Add(s.at))
				if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
					t.Fatalf("step %d (signature %d at +%s): %v, want %v", i, s.sig, s.at, err, s.want)
				}
			}
			if n := rc.len(); n != c.left {
				t.Fatalf("%d signatures remembered, want %d", n, c.left)
			}
		})
	}
}

// Many signatures over hours: memory stays bounded by what one window
// holds, and the queue is compacted.
func TestReplayCacheBounded(t *testing.T) {
	rc := newReplayCache(1000)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 20000 {
		now := t0.Add(time.Duration(i) * 5 * time.Second) // 360 in a window
		if err := rc.first(sha256.Sum256(fmt.Appendf(nil, "%d", i)), now); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n, q := rc.len(), len(rc.order); n != 360 || q > 2*360+64 {
		t.Fatalf("%d remembered, queue %d", n, q)
	}
}

// len is the number of signatures remembered.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
