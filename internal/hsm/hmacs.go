package hsm

import (
	"crypto"
	"hash"
	"sync"

	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// hmacPools keeps a generic secret's keyed HMAC states, one pool per hash,
// so a single-part C_Sign or C_Verify does not key a new HMAC (five
// allocations and two hash blocks) each time. A state holds what the key
// already holds (its inner and outer pads) and goes with the key.
type hmacPools [5]sync.Pool // SHA-1, SHA-224, SHA-256, SHA-384, SHA-512

func hmacSlot(h crypto.Hash) int {
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

// hmac returns an HMAC keyed with k's secret, reset, from the pool when it
// has one. pooled says whether putHMAC may take it back.
func (k *keyMaterial) hmac(h crypto.Hash) (m hash.Hash, pooled bool, err error) {
	i := hmacSlot(h)
	if k.macs != nil && i >= 0 {
		if m, ok := k.macs[i].Get().(hash.Hash); ok {
			return m, true, nil
		}
	}
	m, err = mech.NewHMAC(h, k.secret)
	return m, err == nil && k.macs != nil && i >= 0, err
}

// putHMAC gives m, from k.hmac(h), back for reuse. Only its one user may
// call it, once, after its last use.
func (k *keyMaterial) putHMAC(h crypto.Hash, m hash.Hash) {
	m.Reset()
	k.macs[hmacSlot(h)].Put(m)
}
