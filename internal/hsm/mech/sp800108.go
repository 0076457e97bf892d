package mech

import (
	"crypto"
	"crypto/hmac"
	"encoding/binary"
	"fmt"
)

// KBKDFSegment is one piece of the PRF input of the NIST SP 800-108 KDF in
// counter mode, as PKCS #11 v3.0 lays the input out (CK_PRF_DATA_PARAM):
// the counter, the derived keying material's length, or bytes.
type KBKDFSegment struct {
	Kind         KBKDFSegmentKind
	WidthBits    int    // counter and length: 8 to 32 (counter), 8 to 64 (length), multiples of 8
	LittleEndian bool   // counter and length
	SumOfKeys    bool   // length: L is the key's length (true) or all the PRF output's (false)
	Bytes        []byte // bytes
}

// KBKDFSegmentKind is what a KBKDFSegment holds.
type KBKDFSegmentKind int

const (
	KBKDFCounter KBKDFSegmentKind = iota + 1
	KBKDFLength
	KBKDFBytes
)

// KBKDFCounterHMAC is the SP 800-108 KDF in counter mode with HMAC-h keyed
// with key as its PRF: K(i) = HMAC(key, input(i)) for i from 1, input(i)
// being the segments in their order with the counter as i and the length
// as L bits; the key is K(1) || K(2) || ... cut to n bytes. Exactly one
// segment is the counter and at most one the length; a counter too narrow
// for the iterations, or a length too narrow for L, is ErrParam.
func KBKDFCounterHMAC(h crypto.Hash, key []byte, segs []KBKDFSegment, n int) ([]byte, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("%w: SP 800-108 output of %d bytes", ErrParam, n)
	}
	hlen := h.Size()
	iters := (n + hlen - 1) / hlen
	var counters, lengths int
	for _, s := range segs {
		switch s.Kind {
		case KBKDFCounter:
			counters++
			if s.WidthBits%8 != 0 || s.WidthBits < 8 || s.WidthBits > 32 {
				return nil, fmt.Errorf("%w: counter of %d bits: 8, 16, 24 or 32", ErrParam, s.WidthBits)
			}
			if uint64(iters) > 1<<s.WidthBits-1 {
				return nil, fmt.Errorf("%w: a %d-bit counter cannot count %d iterations", ErrParam, s.WidthBits, iters)
			}
		case KBKDFLength:
			lengths++
			if s.WidthBits%8 != 0 || s.WidthBits < 8 || s.WidthBits > 64 {
				return nil, fmt.Errorf("%w: length of %d bits: 8 to 64, a multiple of 8", ErrParam, s.WidthBits)
			}
			if s.WidthBits < 64 && kbkdfL(s, n, iters*hlen) >= 1<<s.WidthBits {
				return nil, fmt.Errorf("%w: a %d-bit length cannot hold %d bits", ErrParam, s.WidthBits, kbkdfL(s, n, iters*hlen))
			}
		case KBKDFBytes:
		default:
			return nil, fmt.Errorf("%w: PRF data of kind %d", ErrParam, s.Kind)
		}
	}
	if counters != 1 || lengths > 1 {
		return nil, fmt.Errorf("%w: counter mode takes one counter and at most one length, not %d and %d", ErrParam, counters, lengths)
	}
	mac := hmac.New(h.New, key)
	out := make([]byte, 0, iters*hlen)
	for i := 1; i <= iters; i++ {
		mac.Reset()
		for _, s := range segs {
			switch s.Kind {
			case KBKDFCounter:
				mac.Write(kbkdfInt(uint64(i), s))
			case KBKDFLength:
				mac.Write(kbkdfInt(kbkdfL(s, n, iters*hlen), s))
			default:
				mac.Write(s.Bytes)
			}
		}
		out = mac.Sum(out)
	}
	clear(out[n:])
	return out[:n], nil
}

// kbkdfL is L in bits: the key's length, or all the PRF output's.
func kbkdfL(s KBKDFSegment, n, total int) uint64 {
	if s.SumOfKeys {
		return uint64(n) * 8
	}
	return uint64(total) * 8
}

// kbkdfInt encodes v in the segment's width and byte order.
func kbkdfInt(v uint64, s KBKDFSegment) []byte {
	var b [8]byte
	w := s.WidthBits / 8
	if s.LittleEndian {
		binary.LittleEndian.PutUint64(b[:], v)
		return b[:w]
	}
	binary.BigEndian.PutUint64(b[:], v)
	return b[8-w:]
}
