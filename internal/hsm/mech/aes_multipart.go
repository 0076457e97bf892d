package mech

import (
	"crypto/cipher"
	"fmt"
)

// Mode is an AES mode that can run as a multi-part operation.
type Mode uint8

// Modes. Zero is invalid.
const (
	ModeECB    Mode = iota + 1 // no padding, input a multiple of 16 overall
	ModeCBC                    // no padding, input a multiple of 16 overall
	ModeCBCPad                 // PKCS #7 padding
	ModeCTR                    // any length
)

func (m Mode) String() string {
	switch m {
	case ModeECB:
		return "ECB"
	case ModeCBC:
		return "CBC"
	case ModeCBCPad:
		return "CBC-PAD"
	case ModeCTR:
		return "CTR"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Direction says whether a Multipart encrypts or decrypts.
type Direction uint8

// Directions. Zero is invalid.
const (
	Encrypt Direction = iota + 1
	Decrypt
)

// Multipart is one multi-part ECB, CBC, CBC-PAD or CTR operation
// (C_EncryptUpdate/C_EncryptFinal and their decrypt twins). It buffers partial
// blocks between calls; CBC-PAD decryption also holds back the last complete
// block until Final, where the padding is checked. After Final, or after any
// error, the operation is over and further calls give ErrDone.
//
// A Multipart is not safe for concurrent use.
type Multipart struct {
	mode   Mode
	dir    Direction
	bm     cipher.BlockMode // ECB, CBC, CBC-PAD
	ctr    cipher.Stream    // CTR
	budget uint64           // CTR: bytes left before the counter wraps
	buf    [blockSize]byte  // pending input (block modes); buf[:n] is valid
	n      int
	done   bool
}

// NewMultipart starts a multi-part operation. iv is the 16-byte IV for CBC and
// CBC-PAD and the initial counter block for CTR (nil for ECB); counterBits is
// the CTR counter width (1..128, see CTR) and is ignored by the other modes.
func NewMultipart(b cipher.Block, mode Mode, dir Direction, iv []byte, counterBits int) (*Multipart, error) {
	if dir != Encrypt && dir != Decrypt {
		return nil, fmt.Errorf("%w: direction %d", ErrParam, dir)
	}
	m := &Multipart{mode: mode, dir: dir}
	switch mode {
	case ModeECB:
		if err := checkBlock(b); err != nil {
			return nil, err
		}
		m.bm = ecbMode{b: b, decrypt: dir == Decrypt}
	case ModeCBC, ModeCBCPad:
		if err := checkBlockIV(b, iv); err != nil {
			return nil, err
		}
		if dir == Encrypt {
			m.bm = cipher.NewCBCEncrypter(b, iv)
		} else {
			m.bm = cipher.NewCBCDecrypter(b, iv)
		}
	case ModeCTR:
		if err := checkBlockIV(b, iv); err != nil {
			return nil, err
		}
		budget, err := ctrBudget(iv, counterBits)
		if err != nil {
			return nil, err
		}
		m.budget = budget
		m.ctr = cipher.NewCTR(b, iv)
	default:
		return nil, fmt.Errorf("%w: mode %v", ErrParam, mode)
	}
	return m, nil
}

// holdBack reports whether the last complete block must wait for Final.
func (m *Multipart) holdBack() bool { return m.mode == ModeCBCPad && m.dir == Decrypt }

// split returns how many of total pending bytes Update processes now.
func (m *Multipart) split(total int) int {
	keep := total % blockSize
	if keep == 0 && total > 0 && m.holdBack() {
		keep = blockSize
	}
	return total - keep
}

// UpdateLen returns exactly how many bytes Update would append for n more
// bytes of input, without changing the state.
func (m *Multipart) UpdateLen(n int) int {
	if m.mode == ModeCTR {
		return n
	}
	return m.split(m.n + n)
}

// FinalLen returns an upper bound on what Final appends: 16 for CBC-PAD (for
// decryption the exact length, 0..15, is known only after the padding check),
// 0 otherwise.
func (m *Multipart) FinalLen() int {
	if m.mode == ModeCBCPad {
		return blockSize
	}
	return 0
}

// Update processes src and appends the output available so far to dst, which
// must not overlap src. CTR fails with ErrDataLen, processing nothing, if the
// counter would wrap.
func (m *Multipart) Update(dst, src []byte) ([]byte, error) {
	if m.done {
		return nil, ErrDone
	}
	if m.mode == ModeCTR {
		if uint64(len(src)) > m.budget {
			m.finish()
			return nil, fmt.Errorf("%w: CTR counter would wrap", ErrDataLen)
		}
		m.budget -= uint64(len(src))
		ret, out := grow(dst, len(src))
		m.ctr.XORKeyStream(out, src)
		return ret, nil
	}
	proc := m.split(m.n + len(src))
	ret, out := grow(dst, proc)
	if proc > 0 && m.n > 0 { // complete the buffered block first
		k := copy(m.buf[m.n:], src)
		src = src[k:]
		m.bm.CryptBlocks(out[:blockSize], m.buf[:])
		out = out[blockSize:]
		proc -= blockSize
		m.n = 0
	}
	m.bm.CryptBlocks(out[:proc], src[:proc])
	m.n += copy(m.buf[m.n:], src[proc:])
	return ret, nil
}

// Final ends the operation and appends the last output to dst: the padded
// last block for CBC-PAD encryption, the unpadded last block for CBC-PAD
// decryption, nothing for the other modes. Leftover input that is not a
// whole block (ECB, CBC), or a CBC-PAD ciphertext that is not a non-zero
// multiple of 16, gives ErrDataLen; bad padding gives ErrEncryptedDataInvalid.
func (m *Multipart) Final(dst []byte) ([]byte, error) {
	if m.done {
		return nil, ErrDone
	}
	defer m.finish()
	switch {
	case m.mode == ModeCTR:
		return dst, nil
	case m.mode != ModeCBCPad:
		if m.n != 0 {
			return nil, fmt.Errorf("%w: %v input not a multiple of %d bytes", ErrDataLen, m.mode, blockSize)
		}
		return dst, nil
	case m.dir == Encrypt:
		padBlock(&m.buf, m.buf[:m.n])
		ret, out := grow(dst, blockSize)
		m.bm.CryptBlocks(out, m.buf[:])
		return ret, nil
	default:
		if m.n != blockSize {
			return nil, fmt.Errorf("%w: CBC-PAD ciphertext not a non-zero multiple of %d bytes", ErrDataLen, blockSize)
		}
		var last [blockSize]byte
		m.bm.CryptBlocks(last[:], m.buf[:])
		n, ok := pkcs7PadLen(last[:])
		if ok != 1 {
			clear(last[:])
			return nil, ErrEncryptedDataInvalid
		}
		ret := append(dst, last[:blockSize-n]...)
		clear(last[:])
		return ret, nil
	}
}

// finish ends the operation and wipes the buffered data.
func (m *Multipart) finish() {
	m.done = true
	clear(m.buf[:])
	m.n = 0
}

// ecbMode is ECB as a cipher.BlockMode.
type ecbMode struct {
	b       cipher.Block
	decrypt bool
}

func (e ecbMode) BlockSize() int { return blockSize }

func (e ecbMode) CryptBlocks(dst, src []byte) { cryptECB(e.b, e.decrypt, dst, src) }
