package mech

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/subtle"
	"fmt"
	"io"
)

// CloudHSM's AES key wrap variants and PKCS #11's CKM_RSA_AES_KEY_WRAP, built
// on the RFC 3394 and RFC 5649 functions of kw.go and on RSA-OAEP.

// CheckDefaultKWIV accepts an absent IV or the RFC 3394 default
// A6A6A6A6A6A6A6A6, the only IVs CloudHSM's NO_PAD and PKCS5_PAD wraps take.
func CheckDefaultKWIV(iv []byte) error {
	if len(iv) == 0 || len(iv) == semiblock && subtle.ConstantTimeCompare(iv, defaultKWIV[:]) == 1 {
		return nil
	}
	return fmt.Errorf("%w: the IV is absent or A6A6A6A6A6A6A6A6", ErrParam)
}

// WrapKWPKCS5 appends the RFC 3394 wrapping (default IV) of src padded as
// PKCS #5 pads to 8-byte blocks: 1 to 8 bytes, each the pad's length. src
// must hold at least 8 bytes (ErrDataLen), so that the padded key is the
// two semiblocks RFC 3394 needs.
func WrapKWPKCS5(dst []byte, b cipher.Block, src []byte) ([]byte, error) {
	if len(src) < semiblock {
		return nil, fmt.Errorf("%w: AES key wrap with PKCS #5 padding of %d bytes: at least 8", ErrDataLen, len(src))
	}
	n := semiblock - len(src)%semiblock
	padded := make([]byte, len(src)+n)
	copy(padded, src)
	for i := len(src); i < len(padded); i++ {
		padded[i] = byte(n)
	}
	defer clear(padded)
	return WrapKW(dst, b, nil, padded)
}

// UnwrapKWPKCS5 unwraps (default IV) and removes PKCS #5 padding. A wrong
// key, a modified ciphertext or bad padding give ErrAuthFailed, the padding
// checked without data-dependent branches; nothing is appended then.
func UnwrapKWPKCS5(dst []byte, b cipher.Block, src []byte) ([]byte, error) {
	plain, err := UnwrapKW(nil, b, nil, src)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	n := int(plain[len(plain)-1])
	ok := ctLessOrEq(1, uint64(n)) & ctLessOrEq(uint64(n), semiblock)
	for i := len(plain) - semiblock; i < len(plain); i++ {
		inPad := ctLessOrEq(uint64(len(plain)-n), uint64(i))
		ok &= subtle.ConstantTimeByteEq(plain[i], byte(n)) | (inPad ^ 1)
	}
	if ok != 1 || len(plain)-n < semiblock {
		return nil, ErrAuthFailed
	}
	return append(dst, plain[:len(plain)-n]...), nil
}

// RSAAESParams are CK_RSA_AES_KEY_WRAP_PARAMS: the temporary AES key's
// size and the OAEP parameters that wrap it.
type RSAAESParams struct {
	AESKeyBits int
	OAEP       OAEPParams
}

func (p RSAAESParams) keyLen() (int, error) {
	switch p.AESKeyBits {
	case 128, 192, 256:
		return p.AESKeyBits / 8, nil
	}
	return 0, fmt.Errorf("%w: ulAESKeyBits %d: 128, 192 or 256", ErrParam, p.AESKeyBits)
}

// WrapRSAAES is CKM_RSA_AES_KEY_WRAP (PKCS #11 v3.0 §2.1.21): a temporary
// AES key from random wraps src with RFC 5649 and is itself wrapped with
// RSA-OAEP under pub; the output is the OAEP ciphertext (the modulus size)
// followed by the AES wrapping. The temporary key is cleared after use.
func WrapRSAAES(random io.Reader, pub *rsa.PublicKey, p RSAAESParams, src []byte) ([]byte, error) {
	n, err := p.keyLen()
	if err != nil {
		return nil, err
	}
	tmp := make([]byte, n)
	defer clear(tmp)
	if _, err := io.ReadFull(orDefault(random), tmp); err != nil {
		return nil, fmt.Errorf("mech: temporary AES key: %w", err)
	}
	b, err := aes.NewCipher(tmp)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeySize, err)
	}
	out, err := EncryptOAEP(random, pub, p.OAEP, tmp)
	if err != nil {
		return nil, err
	}
	return WrapKWP(out, b, nil, src)
}

// UnwrapRSAAES reverses WrapRSAAES with the private key. Any failure of
// either layer is ErrEncryptedDataInvalid (or ErrDataLen for a blob too
// short to hold both), never more precise.
func UnwrapRSAAES(priv *rsa.PrivateKey, p RSAAESParams, src []byte) ([]byte, error) {
	n, err := p.keyLen()
	if err != nil {
		return nil, err
	}
	k := priv.Size()
	if len(src) < k+2*semiblock {
		return nil, fmt.Errorf("%w: RSA-AES wrapped key of %d bytes, want at least %d", ErrDataLen, len(src), k+2*semiblock)
	}
	tmp, err := DecryptOAEP(priv, p.OAEP, src[:k])
	if err != nil {
		return nil, err
	}
	defer clear(tmp)
	if len(tmp) != n {
		return nil, ErrEncryptedDataInvalid
	}
	b, err := aes.NewCipher(tmp)
	if err != nil {
		return nil, ErrEncryptedDataInvalid
	}
	return UnwrapKWP(nil, b, nil, src[k:])
}
