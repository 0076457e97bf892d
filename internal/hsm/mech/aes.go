package mech

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
)

const blockSize = aes.BlockSize

// NewAES returns the AES block cipher for a 16-, 24- or 32-byte key. Every
// other function here takes the cipher.Block, so the device can expand a key
// once and reuse it.
func NewAES(key []byte) (cipher.Block, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: AES key of %d bytes", ErrKeySize, len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeySize, err)
	}
	return b, nil
}

// grow extends dst by n bytes, reusing its capacity when it can, and returns
// the whole slice and the n new bytes.
func grow(dst []byte, n int) (whole, tail []byte) {
	whole = slices.Grow(dst, n)[:len(dst)+n]
	return whole, whole[len(dst):]
}

func checkBlock(b cipher.Block) error {
	if b == nil || b.BlockSize() != blockSize {
		return fmt.Errorf("%w: block cipher must be AES", ErrParam)
	}
	return nil
}

func checkBlockIV(b cipher.Block, iv []byte) error {
	if err := checkBlock(b); err != nil {
		return err
	}
	if len(iv) != blockSize {
		return fmt.Errorf("%w: IV of %d bytes, want %d", ErrParam, len(iv), blockSize)
	}
	return nil
}

// cryptECB runs b over whole blocks of src into dst (same length).
func cryptECB(b cipher.Block, decrypt bool, dst, src []byte) {
	for i := 0; i < len(src); i += blockSize {
		if decrypt {
			b.Decrypt(dst[i:i+blockSize], src[i:i+blockSize])
		} else {
			b.Encrypt(dst[i:i+blockSize], src[i:i+blockSize])
		}
	}
}

// padBlock fills blk with tail (shorter than a block) and PKCS #7 padding.
func padBlock(blk *[blockSize]byte, tail []byte) {
	n := copy(blk[:], tail)
	p := byte(blockSize - n)
	for i := n; i < blockSize; i++ {
		blk[i] = p
	}
}

// pkcs7PadLen returns the padding length announced by the last block and 1 if
// the padding is valid (1..16 bytes, each equal to the length), 0 if not. It
// reads the whole block whatever the padding, without secret-dependent
// branches.
func pkcs7PadLen(last []byte) (n, ok int) {
	p := int(last[blockSize-1])
	ok = subtle.ConstantTimeLessOrEq(1, p) & subtle.ConstantTimeLessOrEq(p, blockSize)
	for i := 0; i < blockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(blockSize, i+p) // i >= 16-p
		eq := subtle.ConstantTimeByteEq(last[i], byte(p))
		ok &= eq | (inPad ^ 1)
	}
	return subtle.ConstantTimeSelect(ok, p, 0), ok
}

// ctrBudget returns how many bytes can be processed from the counter block iv
// before its low bits-bit counter wraps, saturating at MaxUint64. Below that
// budget the standard library's full-width 128-bit increment equals the
// PKCS #11 bits-wide one, since no carry leaves the counter field.
func ctrBudget(iv []byte, bits int) (uint64, error) {
	if bits < 1 || bits > 128 {
		return 0, fmt.Errorf("%w: CTR counter bits %d, want 1..128", ErrParam, bits)
	}
	hi := binary.BigEndian.Uint64(iv[:8])
	lo := binary.BigEndian.Uint64(iv[8:])
	var blocks uint64 // 2^bits - counter, the counter values left
	if bits < 64 {
		c := lo & (1<<bits - 1)
		blocks = 1<<bits - c
	} else {
		hmask := uint64(1)<<(bits-64) - 1 // counter bits in hi; all ones when bits == 128
		if hi&hmask != hmask || lo == 0 {
			return math.MaxUint64, nil // at least 2^64 blocks left
		}
		blocks = -lo
	}
	if blocks > math.MaxUint64/blockSize {
		return math.MaxUint64, nil
	}
	return blocks * blockSize, nil
}

// GCM limits. PKCS #11 allows IVs of 1..256 bytes and tags of 4..16 bytes;
// the standard library implements two subsets, and NewGCM supports exactly
// those:
//   - a 12-byte IV with a tag of 12..16 bytes (cipher.NewGCMWithTagSize);
//   - an IV of 1..256 bytes with a 16-byte tag (cipher.NewGCMWithNonceSize).
//
// Other combinations (short tags, or a non-12-byte IV with a tag shorter than
// 16) give ErrParam. In FIPS 140-only mode the standard library refuses
// caller-chosen IVs altogether; that also surfaces as ErrParam, but for
// OpenGCM's 12-byte IV and 16-byte tag.
const (
	GCMStandardIVLen = 12
	GCMMaxIVLen      = 256
	GCMMinTagLen     = 12
	GCMTagLen        = 16
	gcmMaxPlaintext  = 1<<36 - 32 // SP 800-38D limit; the standard library panics past it
)

// NewGCM returns AES-GCM for the given IV and tag lengths in bytes, within the
// limits above. The result may be cached by the caller for a key and
// parameter set.
func NewGCM(b cipher.Block, ivLen, tagLen int) (cipher.AEAD, error) {
	if err := checkBlock(b); err != nil {
		return nil, err
	}
	var (
		a   cipher.AEAD
		err error
	)
	switch {
	case ivLen == GCMStandardIVLen && tagLen == GCMTagLen:
		a, err = cipher.NewGCM(b)
	case ivLen == GCMStandardIVLen && tagLen >= GCMMinTagLen && tagLen < GCMTagLen:
		a, err = cipher.NewGCMWithTagSize(b, tagLen)
	case ivLen >= 1 && ivLen <= GCMMaxIVLen && tagLen == GCMTagLen:
		a, err = cipher.NewGCMWithNonceSize(b, ivLen)
	default:
		return nil, fmt.Errorf("%w: GCM with a %d-byte IV and a %d-byte tag is not supported", ErrParam, ivLen, tagLen)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParam, err)
	}
	return a, nil
}

// SealGCM appends the AES-GCM encryption of plaintext, authenticated with aad,
// followed by its tagLen-byte tag, to dst. The IV length is len(iv).
func SealGCM(dst []byte, b cipher.Block, iv []byte, tagLen int, plaintext, aad []byte) ([]byte, error) {
	a, err := NewGCM(b, len(iv), tagLen)
	if err != nil {
		return nil, err
	}
	if uint64(len(plaintext)) > gcmMaxPlaintext {
		return nil, fmt.Errorf("%w: GCM plaintext too long", ErrDataLen)
	}
	return a.Seal(dst, iv, plaintext, aad), nil
}

// OpenGCM checks the tag of ciphertext (which ends with the tagLen-byte tag)
// and aad, and appends the plaintext to dst. A ciphertext shorter than the tag
// gives ErrDataLen; a bad tag gives ErrAuthFailed and appends nothing.
//
// In FIPS 140-only mode, where the standard library refuses GCM under a
// caller's IV to open as well, a 12-byte IV with a 16-byte tag is opened
// through the random-nonce GCM, which takes IV || ciphertext || tag.
func OpenGCM(dst []byte, b cipher.Block, iv []byte, tagLen int, ciphertext, aad []byte) ([]byte, error) {
	if fips140.Enforced() && len(iv) == GCMStandardIVLen && tagLen == GCMTagLen {
		return OpenGCMPrefixedIV(dst, b, tagLen, slices.Concat(iv, ciphertext), aad)
	}
	a, err := NewGCM(b, len(iv), tagLen)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < tagLen {
		return nil, fmt.Errorf("%w: GCM ciphertext shorter than its tag", ErrDataLen)
	}
	if uint64(len(ciphertext)) > gcmMaxPlaintext+uint64(tagLen) {
		return nil, fmt.Errorf("%w: GCM ciphertext too long", ErrDataLen)
	}
	out, err := a.Open(dst, iv, ciphertext, aad)
	if err != nil {
		return nil, ErrAuthFailed
	}
	return out, nil
}

// NewGCMRandomIV returns the AEAD that SealGCMRandomIVWith and
// OpenGCMPrefixedIVWith take: GCM with 16-byte tags under 12-byte IVs it
// draws from crypto/rand, which FIPS 140-only mode allows. It keeps no
// state between calls, so a key may build it once and share it.
func NewGCMRandomIV(b cipher.Block) (cipher.AEAD, error) {
	if err := checkBlock(b); err != nil {
		return nil, err
	}
	a, err := cryptobackend.NewGCMWithRandomNonce(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParam, err)
	}
	return a, nil
}

// SealGCMRandomIV encrypts like SealGCM under a fresh random 12-byte IV
// that it chooses, and returns the IV and dst with the ciphertext and tag
// appended. With a 16-byte tag and rnd nil or crypto/rand.Reader it uses
// the standard library's random-nonce GCM, which FIPS 140-only mode allows;
// otherwise the IV is read from rnd (nil: crypto/rand.Reader).
func SealGCMRandomIV(dst []byte, rnd io.Reader, b cipher.Block, tagLen int, plaintext, aad []byte) (iv, out []byte, err error) {
	if uint64(len(plaintext)) > gcmMaxPlaintext {
		return nil, nil, fmt.Errorf("%w: GCM plaintext too long", ErrDataLen)
	}
	if tagLen == GCMTagLen && (rnd == nil || rnd == rand.Reader) {
		a, err := NewGCMRandomIV(b)
		if err != nil {
			return nil, nil, err
		}
		return SealGCMRandomIVWith(dst, a, plaintext, aad)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	iv = make([]byte, GCMStandardIVLen)
	if _, err := io.ReadFull(rnd, iv); err != nil {
		return nil, nil, fmt.Errorf("GCM IV: %w", err)
	}
	out, err = SealGCM(dst, b, iv, tagLen, plaintext, aad)
	if err != nil {
		return nil, nil, err
	}
	return iv, out, nil
}

// SealGCMRandomIVWith is SealGCMRandomIV with a 16-byte tag through a, an
// AEAD from NewGCMRandomIV. With an empty dst the result takes one
// allocation: iv and out share it (iv just before out), so neither may be
// appended to in place of the other.
func SealGCMRandomIVWith(dst []byte, a cipher.AEAD, plaintext, aad []byte) (iv, out []byte, err error) {
	if uint64(len(plaintext)) > gcmMaxPlaintext {
		return nil, nil, fmt.Errorf("%w: GCM plaintext too long", ErrDataLen)
	}
	if len(dst) == 0 {
		// Seal writes the nonce, then the ciphertext and tag.
		sealed := a.Seal(dst, nil, plaintext, aad)
		return sealed[:GCMStandardIVLen:GCMStandardIVLen], sealed[GCMStandardIVLen:], nil
	}
	sealed := a.Seal(nil, nil, plaintext, aad)
	iv = sealed[:GCMStandardIVLen:GCMStandardIVLen]
	return iv, append(dst, sealed[GCMStandardIVLen:]...), nil
}

// OpenGCMPrefixedIVWith is OpenGCMPrefixedIV with a 16-byte tag through a,
// an AEAD from NewGCMRandomIV.
func OpenGCMPrefixedIVWith(dst []byte, a cipher.AEAD, data, aad []byte) ([]byte, error) {
	if len(data) < GCMStandardIVLen+GCMTagLen {
		return nil, fmt.Errorf("%w: GCM input shorter than its IV and tag", ErrDataLen)
	}
	if uint64(len(data)) > gcmMaxPlaintext+uint64(GCMStandardIVLen+GCMTagLen) {
		return nil, fmt.Errorf("%w: GCM ciphertext too long", ErrDataLen)
	}
	out, err := a.Open(dst, nil, data, aad)
	if err != nil {
		return nil, ErrAuthFailed
	}
	return out, nil
}

// OpenGCMPrefixedIV is OpenGCM for input that starts with its 12-byte IV
// (IV || ciphertext || tag, as SealGCMRandomIV's IV and output together).
// With a 16-byte tag it uses the standard library's random-nonce GCM,
// which FIPS 140-only mode allows.
func OpenGCMPrefixedIV(dst []byte, b cipher.Block, tagLen int, data, aad []byte) ([]byte, error) {
	if len(data) < GCMStandardIVLen+tagLen {
		return nil, fmt.Errorf("%w: GCM input shorter than its IV and tag", ErrDataLen)
	}
	if tagLen != GCMTagLen {
		return OpenGCM(dst, b, data[:GCMStandardIVLen], tagLen, data[GCMStandardIVLen:], aad)
	}
	a, err := NewGCMRandomIV(b)
	if err != nil {
		return nil, err
	}
	return OpenGCMPrefixedIVWith(dst, a, data, aad)
}
