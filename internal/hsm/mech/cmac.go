package mech

import (
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
	"hash"
)

// CMACSize is the length of a full AES-CMAC tag.
const CMACSize = 16

// NewCMAC returns AES-CMAC (NIST SP 800-38B, RFC 4493) under b as a streaming
// hash.Hash. Finish it with Sum, SumMAC (truncated tags, for
// CKM_AES_CMAC_GENERAL) or VerifyMAC.
func NewCMAC(b cipher.Block) (hash.Hash, error) {
	if err := checkBlock(b); err != nil {
		return nil, err
	}
	c := &cmac{b: b}
	var l [blockSize]byte
	b.Encrypt(l[:], l[:]) // L = CIPH_K(0^128)
	dbl(&c.k1, &l)
	dbl(&c.k2, &c.k1)
	clear(l[:])
	return c, nil
}

// SignCMAC returns the AES-CMAC of msg truncated to macLen bytes (1..16).
func SignCMAC(b cipher.Block, msg []byte, macLen int) ([]byte, error) {
	m, err := NewCMAC(b)
	if err != nil {
		return nil, err
	}
	m.Write(msg)
	return SumMAC(nil, m, macLen)
}

// dbl multiplies src by x in GF(2^128) (SP 800-38B §6.1 subkey step), in
// constant time.
func dbl(dst, src *[blockSize]byte) {
	msb := src[0] >> 7
	for i := range blockSize - 1 {
		dst[i] = src[i]<<1 | src[i+1]>>7
	}
	dst[blockSize-1] = src[blockSize-1]<<1 ^ (0x87 & -msb)
}

// cmac is the CMAC state. The last block, complete or not, stays in buf until
// Sum, since only then is it known to be the last.
type cmac struct {
	b      cipher.Block
	k1, k2 [blockSize]byte
	x      [blockSize]byte // chaining value C_i
	buf    [blockSize]byte // pending input, buf[:n]
	n      int
}

func (c *cmac) Size() int      { return CMACSize }
func (c *cmac) BlockSize() int { return blockSize }

func (c *cmac) Reset() {
	clear(c.x[:])
	clear(c.buf[:])
	c.n = 0
}

func (c *cmac) Write(p []byte) (int, error) {
	total := len(p)
	if len(p) == 0 {
		return 0, nil
	}
	if c.n > 0 {
		k := copy(c.buf[c.n:], p)
		c.n += k
		p = p[k:]
		if len(p) == 0 {
			return total, nil
		}
		c.block(c.buf[:]) // full, and more input follows
		c.n = 0
	}
	for len(p) > blockSize {
		c.block(p[:blockSize])
		p = p[blockSize:]
	}
	c.n = copy(c.buf[:], p)
	return total, nil
}

func (c *cmac) block(m []byte) {
	subtle.XORBytes(c.x[:], c.x[:], m)
	c.b.Encrypt(c.x[:], c.x[:])
}

// Sum appends the tag to in without changing the state.
func (c *cmac) Sum(in []byte) []byte {
	var last [blockSize]byte
	if c.n == blockSize {
		subtle.XORBytes(last[:], c.buf[:], c.k1[:])
	} else {
		copy(last[:], c.buf[:c.n])
		last[c.n] = 0x80
		subtle.XORBytes(last[:], last[:], c.k2[:])
	}
	subtle.XORBytes(last[:], last[:], c.x[:])
	c.b.Encrypt(last[:], last[:])
	return append(in, last[:]...)
}

// String keeps key-derived state out of fmt output.
func (c *cmac) String() string { return fmt.Sprintf("AES-CMAC(%d buffered)", c.n) }
