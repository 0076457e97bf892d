package controlplane

import (
	"crypto/sha256"
	"sync"
	"time"
)

// replayWindow is how long a signature is remembered after it was first
// seen: a request dated up to MaxClockSkew ahead stays acceptable until
// MaxClockSkew after its date, so at most twice the skew from now.
const replayWindow = 2 * MaxClockSkew

// defaultReplayCacheSize bounds the signatures remembered (about 100 bytes
// each): 32768 mutating requests in any 30 minutes.
const defaultReplayCacheSize = 1 << 15

// replayCache remembers the signatures of the mutating requests accepted in
// the last replayWindow, so that a request is carried out at most once
// (docs/design.md: Control plane). It never forgets a signature early: when
// it is full, new mutating requests are throttled until old entries expire.
type replayCache struct {
	max int

	// mu guards seen and order; order holds every key of seen, oldest
	// first, from head on.
	mu    sync.Mutex
	seen  map[[sha256.Size]byte]struct{}
	order []replayEntry
	head  int
}

type replayEntry struct {
	sig     [sha256.Size]byte
	expires time.Time
}

func newReplayCache(max int) *replayCache {
	if max <= 0 {
		max = defaultReplayCacheSize
	}
	return &replayCache{max: max, seen: map[[sha256.Size]byte]struct{}{}}
}

// first records sig as seen at now. It refuses a signature seen before
// (ErrInvalidSignature) and, when the cache is full of live signatures, any
// new one (ErrThrottled).
func (c *replayCache) first(sig [sha256.Size]byte, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if _, ok := c.seen[sig]; ok {
		return refuse(ErrInvalidSignature, "Signature has already been used: a signed request that changes something is carried out once; sign it again to repeat it.")
	}
	if len(c.seen) >= c.max {
		return refuse(ErrThrottled, "Rate exceeded: more than %d changing requests in %s.", c.max, replayWindow)
	}
	c.seen[sig] = struct{}{}
	c.order = append(c.order, replayEntry{sig: sig, expires: now.Add(replayWindow)})
	return nil
}

// expire forgets the signatures whose window has passed. Entries are in
// the order they were seen, so their expiries are ascending (a clock that
// steps back only keeps entries longer).
func (c *replayCache) expire(now time.Time) {
	for c.head < len(c.order) && !now.Before(c.order[c.head].expires) {
		delete(c.seen, c.order[c.head].sig)
		c.order[c.head] = replayEntry{}
		c.head++
	}
	if c.head > len(c.order)/2 && c.head > 64 {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
	if c.head == len(c.order) {
		c.order, c.head = c.order[:0], 0
	}
}
