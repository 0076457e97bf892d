package mech

import (
	"crypto"
	"crypto/fips140"
	"crypto/hmac"
	"crypto/subtle"
	"fmt"
	"hash"
)

// NewHMAC returns a streaming HMAC for h (SHA-1/224/256/384/512) keyed with
// key. Finish it with SumMAC or VerifyMAC. In FIPS 140-only mode, where the
// standard library would panic, keys shorter than 112 bits give ErrKeySize
// (and SHA-1 ErrParam, see checkHash).
func NewHMAC(h crypto.Hash, key []byte) (hash.Hash, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	if fips140.Enforced() && len(key) < 112/8 {
		return nil, fmt.Errorf("%w: HMAC key shorter than 112 bits in FIPS 140-only mode", ErrKeySize)
	}
	return hmac.New(h.New, key), nil
}

// SignHMAC returns the HMAC of msg truncated to macLen bytes (1..h.Size(), the
// full size for the plain mechanisms, the parameter for the _GENERAL ones).
func SignHMAC(h crypto.Hash, key, msg []byte, macLen int) ([]byte, error) {
	m, err := NewHMAC(h, key)
	if err != nil {
		return nil, err
	}
	m.Write(msg)
	return SumMAC(nil, m, macLen)
}

// VerifyHMAC checks mac against the HMAC of msg truncated to macLen bytes, in
// constant time. See VerifyMAC for the errors.
func VerifyHMAC(h crypto.Hash, key, msg, mac []byte, macLen int) error {
	m, err := NewHMAC(h, key)
	if err != nil {
		return err
	}
	m.Write(msg)
	return VerifyMAC(m, mac, macLen)
}

// SumMAC appends the first macLen bytes (1..m.Size(), else ErrParam) of the
// MAC computed so far by m (an HMAC or CMAC) to dst.
func SumMAC(dst []byte, m hash.Hash, macLen int) ([]byte, error) {
	if macLen < 1 || macLen > m.Size() {
		return nil, fmt.Errorf("%w: MAC length %d, want 1..%d", ErrParam, macLen, m.Size())
	}
	// The whole MAC goes straight onto dst (one allocation at most, none
	// when dst has room); what truncation drops is cleared.
	n := len(dst)
	ret := m.Sum(dst)
	clear(ret[n+macLen:])
	return ret[:n+macLen], nil
}

// VerifyMAC compares mac with the first macLen bytes of m's MAC in constant
// time. A mac that is not macLen bytes long gives ErrSignatureLen, a wrong
// one ErrSignatureInvalid, a macLen outside 1..m.Size() ErrParam.
func VerifyMAC(m hash.Hash, mac []byte, macLen int) error {
	var buf [64]byte
	want, err := SumMAC(buf[:0], m, macLen)
	if err != nil {
		return err
	}
	defer clear(want)
	if len(mac) != macLen {
		return fmt.Errorf("%w: MAC of %d bytes, want %d", ErrSignatureLen, len(mac), macLen)
	}
	if subtle.ConstantTimeCompare(mac, want) != 1 {
		return ErrSignatureInvalid
	}
	return nil
}
