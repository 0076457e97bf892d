package mech

// The one-shot AES modes: the tests' reference for the multi-part path
// (NewMultipart) the device runs.

import (
	"crypto/cipher"
	"fmt"
)

// EncryptECB appends the ECB encryption of src, whose length must be a
// multiple of 16 (ErrDataLen otherwise), to dst.
func EncryptECB(dst []byte, b cipher.Block, src []byte) ([]byte, error) {
	return ecb(dst, b, src, false)
}

// DecryptECB appends the ECB decryption of src (a multiple of 16) to dst.
func DecryptECB(dst []byte, b cipher.Block, src []byte) ([]byte, error) {
	return ecb(dst, b, src, true)
}

func ecb(dst []byte, b cipher.Block, src []byte, decrypt bool) ([]byte, error) {
	if err := checkBlock(b); err != nil {
		return nil, err
	}
	if len(src)%blockSize != 0 {
		return nil, fmt.Errorf("%w: ECB input of %d bytes", ErrDataLen, len(src))
	}
	ret, out := grow(dst, len(src))
	cryptECB(b, decrypt, out, src)
	return ret, nil
}

// EncryptCBC appends the CBC encryption (no padding) of src, a multiple of 16
// bytes, under the 16-byte iv to dst.
func EncryptCBC(dst []byte, b cipher.Block, iv, src []byte) ([]byte, error) {
	if err := checkBlockIV(b, iv); err != nil {
		return nil, err
	}
	if len(src)%blockSize != 0 {
		return nil, fmt.Errorf("%w: CBC input of %d bytes", ErrDataLen, len(src))
	}
	ret, out := grow(dst, len(src))
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, src)
	return ret, nil
}

// DecryptCBC appends the CBC decryption (no padding) of src, a multiple of 16
// bytes, to dst.
func DecryptCBC(dst []byte, b cipher.Block, iv, src []byte) ([]byte, error) {
	if err := checkBlockIV(b, iv); err != nil {
		return nil, err
	}
	if len(src)%blockSize != 0 {
		return nil, fmt.Errorf("%w: CBC input of %d bytes", ErrDataLen, len(src))
	}
	ret, out := grow(dst, len(src))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, src)
	return ret, nil
}

// EncryptCBCPad appends the CBC encryption of src padded per PKCS #7 (1 to 16
// bytes of padding, always present) to dst. Any length of src is valid.
func EncryptCBCPad(dst []byte, b cipher.Block, iv, src []byte) ([]byte, error) {
	if err := checkBlockIV(b, iv); err != nil {
		return nil, err
	}
	full := len(src) &^ (blockSize - 1)
	var last [blockSize]byte
	padBlock(&last, src[full:]) // before out may overwrite src (dst == src[:0])
	ret, out := grow(dst, full+blockSize)
	m := cipher.NewCBCEncrypter(b, iv)
	m.CryptBlocks(out[:full], src[:full])
	m.CryptBlocks(out[full:], last[:])
	return ret, nil
}

// DecryptCBCPad appends the CBC decryption of src with its PKCS #7 padding
// removed to dst. src must be a non-zero multiple of 16 bytes (ErrDataLen).
// Bad padding gives ErrEncryptedDataInvalid; the padding is checked without
// data-dependent branches and nothing is appended on failure.
func DecryptCBCPad(dst []byte, b cipher.Block, iv, src []byte) ([]byte, error) {
	if err := checkBlockIV(b, iv); err != nil {
		return nil, err
	}
	if len(src) == 0 || len(src)%blockSize != 0 {
		return nil, fmt.Errorf("%w: CBC-PAD ciphertext of %d bytes", ErrDataLen, len(src))
	}
	ret, out := grow(dst, len(src))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, src)
	n, ok := pkcs7PadLen(out[len(out)-blockSize:])
	if ok != 1 {
		clear(out)
		return nil, ErrEncryptedDataInvalid
	}
	clear(out[len(out)-n:])
	return ret[:len(ret)-n], nil
}

// CTR appends the CTR-mode transform of src (encryption and decryption are the
// same) to dst. iv is the whole 16-byte initial counter block; its low
// counterBits bits (1..128, as in PKCS #11 CK_AES_CTR_PARAMS) are the counter,
// the rest a fixed nonce. If the counter would wrap within src the call fails
// with ErrDataLen and nothing is processed.
func CTR(dst []byte, b cipher.Block, iv []byte, counterBits int, src []byte) ([]byte, error) {
	if err := checkBlockIV(b, iv); err != nil {
		return nil, err
	}
	budget, err := ctrBudget(iv, counterBits)
	if err != nil {
		return nil, err
	}
	if uint64(len(src)) > budget {
		return nil, fmt.Errorf("%w: CTR counter would wrap", ErrDataLen)
	}
	ret, out := grow(dst, len(src))
	cipher.NewCTR(b, iv).XORKeyStream(out, src)
	return ret, nil
}
