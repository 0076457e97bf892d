package mech

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// AES key wrap: RFC 3394 (KW, SP 800-38F W/W⁻¹) and RFC 5649 (KWP, with
// padding), both built on the AES block function of a cipher.Block.

const semiblock = 8

// defaultKWIV is the RFC 3394 §2.2.3.1 default initial value.
var defaultKWIV = [semiblock]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// defaultKWPIV is the RFC 5649 §3 alternative initial value's constant half.
var defaultKWPIV = [4]byte{0xA6, 0x59, 0x59, 0xA6}

// WrapKW appends the RFC 3394 wrapping of src to dst (len(src)+8 bytes). src
// must be a multiple of 8 bytes and at least 16 (ErrDataLen). iv is the
// 8-byte initial value; nil means the default A6A6A6A6A6A6A6A6.
func WrapKW(dst []byte, b cipher.Block, iv, src []byte) ([]byte, error) {
	if err := checkBlock(b); err != nil {
		return nil, err
	}
	a, err := kwIV(iv)
	if err != nil {
		return nil, err
	}
	if len(src) < 2*semiblock || len(src)%semiblock != 0 || len(src) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: key wrap input of %d bytes", ErrDataLen, len(src))
	}
	ret, out := grow(dst, len(src)+semiblock)
	copy(out[semiblock:], src) // copy is a memmove, so dst may alias src
	wrapW(b, &a, out[semiblock:])
	copy(out, a[:])
	return ret, nil
}

// UnwrapKW checks and appends the RFC 3394 unwrapping of src to dst. src must
// be a multiple of 8 bytes and at least 24 (ErrDataLen). A wrong key, IV or a
// modified ciphertext gives ErrAuthFailed (the check is constant time) and
// nothing is appended.
func UnwrapKW(dst []byte, b cipher.Block, iv, src []byte) ([]byte, error) {
	if err := checkBlock(b); err != nil {
		return nil, err
	}
	want, err := kwIV(iv)
	if err != nil {
		return nil, err
	}
	if len(src) < 3*semiblock || len(src)%semiblock != 0 || len(src) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: wrapped key of %d bytes", ErrDataLen, len(src))
	}
	var a [semiblock]byte
	copy(a[:], src)
	ret, out := grow(dst, len(src)-semiblock)
	copy(out, src[semiblock:])
	unwrapW(b, &a, out)
	if subtle.ConstantTimeCompare(a[:], want[:]) != 1 {
		clear(out)
		return nil, ErrAuthFailed
	}
	return ret, nil
}

func kwIV(iv []byte) ([semiblock]byte, error) {
	switch len(iv) {
	case 0:
		return defaultKWIV, nil
	case semiblock:
		return [semiblock]byte(iv), nil
	}
	return [semiblock]byte{}, fmt.Errorf("%w: key wrap IV of %d bytes, want 8", ErrParam, len(iv))
}

// wrapW is SP 800-38F W (RFC 3394 §2.2.1, index form) on the semiblocks r
// (at least two), with the initial value in a, both updated in place.
func wrapW(b cipher.Block, a *[semiblock]byte, r []byte) {
	n := len(r) / semiblock
	var blk [2 * semiblock]byte
	copy(blk[:semiblock], a[:])
	for j := range 6 {
		for i := range n {
			ri := r[i*semiblock : (i+1)*semiblock]
			copy(blk[semiblock:], ri)
			b.Encrypt(blk[:], blk[:])
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(blk[:semiblock], binary.BigEndian.Uint64(blk[:semiblock])^t)
			copy(ri, blk[semiblock:])
		}
	}
	copy(a[:], blk[:semiblock])
	clear(blk[:])
}

// unwrapW is SP 800-38F W⁻¹ (RFC 3394 §2.2.2, index form), in place.
func unwrapW(b cipher.Block, a *[semiblock]byte, r []byte) {
	n := len(r) / semiblock
	var blk [2 * semiblock]byte
	copy(blk[:semiblock], a[:])
	for j := 5; j >= 0; j-- {
		for i := n - 1; i >= 0; i-- {
			ri := r[i*semiblock : (i+1)*semiblock]
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(blk[:semiblock], binary.BigEndian.Uint64(blk[:semiblock])^t)
			copy(blk[semiblock:], ri)
			b.Decrypt(blk[:], blk[:])
			copy(ri, blk[semiblock:])
		}
	}
	copy(a[:], blk[:semiblock])
	clear(blk[:])
}

// WrapKWP appends the RFC 5649 wrapping of src (1 to 2^32-1 bytes, else
// ErrDataLen) to dst: src is zero-padded to a multiple of 8 and its length
// recorded in the initial value. iv is the 4-byte constant half of the initial
// value; nil means the default A65959A6.
func WrapKWP(dst []byte, b cipher.Block, iv, src []byte) ([]byte, error) {
	if err := checkBlock(b); err != nil {
		return nil, err
	}
	pre, err := kwpIV(iv)
	if err != nil {
		return nil, err
	}
	if len(src) == 0 || uint64(len(src)) > math.MaxUint32 || len(src) > math.MaxInt32-2*semiblock {
		return nil, fmt.Errorf("%w: key wrap input of %d bytes", ErrDataLen, len(src))
	}
	padded := (len(src) + semiblock - 1) &^ (semiblock - 1)
	ret, out := grow(dst, padded+semiblock)
	copy(out[semiblock:], src)
	clear(out[semiblock+len(src):])
	var a [semiblock]byte
	copy(a[:4], pre[:])
	binary.BigEndian.PutUint32(a[4:], uint32(len(src)))
	if padded == semiblock { // RFC 5649 §4.1 step 2: one AES block
		copy(out, a[:])
		b.Encrypt(out, out)
		return ret, nil
	}
	wrapW(b, &a, out[semiblock:])
	copy(out, a[:])
	return ret, nil
}

// UnwrapKWP checks and appends the RFC 5649 unwrapping of src to dst. src must
// be a multiple of 8 bytes and at least 16 (ErrDataLen). A wrong key or IV, a
// modified ciphertext, an out-of-range length or non-zero padding all give
// ErrAuthFailed, checked without data-dependent branches; nothing is appended.
func UnwrapKWP(dst []byte, b cipher.Block, iv, src []byte) ([]byte, error) {
	if err := checkBlock(b); err != nil {
		return nil, err
	}
	pre, err := kwpIV(iv)
	if err != nil {
		return nil, err
	}
	if len(src) < 2*semiblock || len(src)%semiblock != 0 || len(src) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: wrapped key of %d bytes", ErrDataLen, len(src))
	}
	var a [semiblock]byte
	ret, out := grow(dst, len(src)-semiblock)
	if len(src) == 2*semiblock {
		var blk [2 * semiblock]byte
		b.Decrypt(blk[:], src)
		copy(a[:], blk[:semiblock])
		copy(out, blk[semiblock:])
		clear(blk[:])
	} else {
		copy(a[:], src)
		copy(out, src[semiblock:])
		unwrapW(b, &a, out)
	}
	plen := uint64(len(out))
	mli := uint64(binary.BigEndian.Uint32(a[4:]))
	ok := subtle.ConstantTimeCompare(a[:4], pre[:])
	ok &= ctLessOrEq(plen-(semiblock-1), mli) & ctLessOrEq(mli, plen) // 8(n-1) < MLI <= 8n
	for i := range out {
		inPad := ctLessOrEq(mli, uint64(i))
		ok &= subtle.ConstantTimeByteEq(out[i], 0) | (inPad ^ 1)
	}
	if ok != 1 {
		clear(out)
		return nil, ErrAuthFailed
	}
	return ret[:len(dst)+int(mli)], nil
}

func kwpIV(iv []byte) ([4]byte, error) {
	switch len(iv) {
	case 0:
		return defaultKWPIV, nil
	case 4:
		return [4]byte(iv), nil
	}
	return [4]byte{}, fmt.Errorf("%w: key wrap with padding IV of %d bytes, want 4", ErrParam, len(iv))
}

// ctLessOrEq returns 1 if x <= y and 0 otherwise, in constant time.
func ctLessOrEq(x, y uint64) int {
	_, borrow := bits.Sub64(y, x, 0)
	return int(borrow ^ 1)
}
