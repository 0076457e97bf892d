package hsm

import (
	"crypto"
	"hash"
	"sync"

	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// hashPools keeps hash states to reuse, one pool per hash: the device's
// digests for hash-then-sign, and each generic secret's keyed HMACs, so a
// single-part operation neither allocates a new state (an HMAC is five
// allocations and two hash blocks) nor keys one each time. A keyed state
// holds what its key already holds (the inner and outer pads) and goes
// with the key. Only the single-part path (Device.single) gives states
// back: its call is the state's one user, and it puts it back reset after
// its last use; a multi-part operation's state is left to the collector.
type hashPools [5]sync.Pool // SHA-1, SHA-224, SHA-256, SHA-384, SHA-512

func hashSlot(h crypto.Hash) int {
	switch h {
	case crypto.SHA1:
		return 0
	case crypto.SHA224:
		return 1
	case crypto.SHA256:
		return 2
	case crypto.SHA384:
		return 3
	case crypto.SHA512:
		return 4
	}
	return -1
}

// get returns a reset state of h from ps (nil: none), or a new one from
// fresh, and the pool it may go back to (nil: none).
func (ps *hashPools) get(h crypto.Hash, fresh func() (hash.Hash, error)) (hash.Hash, *sync.Pool, error) {
	i := hashSlot(h)
	if ps == nil || i < 0 {
		m, err := fresh()
		return m, nil, err
	}
	if m, ok := ps[i].Get().(hash.Hash); ok {
		return m, &ps[i], nil
	}
	m, err := fresh()
	if err != nil {
		return nil, nil, err
	}
	return m, &ps[i], nil
}

// hmac returns an HMAC keyed with k's secret (see hashPools).
func (k *keyMaterial) hmac(h crypto.Hash) (hash.Hash, *sync.Pool, error) {
	return k.macs.get(h, func() (hash.Hash, error) { return mech.NewHMAC(h, k.secret) })
}

// giveBack puts m, from pool, back reset. Only m's one user may call it,
// once, after its last use.
func giveBack(pool *sync.Pool, m hash.Hash) {
	m.Reset()
	pool.Put(m)
}
