package mech

import (
	"crypto"
	"encoding/binary"
	"fmt"
)

// X963KDF is the ANSI X9.63 key derivation function (SEC 1 §3.6.1, the
// CKD_SHA*_KDF of CK_ECDH1_DERIVE_PARAMS): the concatenation of
// Hash(z || counter || sharedInfo) for a 32-bit big-endian counter from 1,
// cut to n bytes. n must be 1 to (2^32-1) hash lengths (ErrParam).
func X963KDF(h crypto.Hash, z, sharedInfo []byte, n int) ([]byte, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	if n <= 0 || uint64(n) > uint64(h.Size())*(1<<32-1) {
		return nil, fmt.Errorf("%w: X9.63 KDF output of %d bytes", ErrParam, n)
	}
	out := make([]byte, 0, n+h.Size())
	var ctr [4]byte
	for i := uint32(1); len(out) < n; i++ {
		d := h.New()
		d.Write(z)
		binary.BigEndian.PutUint32(ctr[:], i)
		d.Write(ctr[:])
		d.Write(sharedInfo)
		out = d.Sum(out)
	}
	clear(out[n:cap(out)])
	return out[:n], nil
}
