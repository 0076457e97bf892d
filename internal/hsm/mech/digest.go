package mech

import (
	"crypto"
	"crypto/fips140"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// checkHash accepts the hashes the device offers: SHA-1, SHA-224, SHA-256,
// SHA-384 and SHA-512. Anything else is ErrParam, and so is SHA-1 in FIPS
// 140-only mode, where the standard library panics on it.
func checkHash(h crypto.Hash) error {
	switch h {
	case crypto.SHA1:
		if fips140.Enforced() {
			return fmt.Errorf("%w: SHA-1 is not allowed in FIPS 140-only mode", ErrParam)
		}
		return nil
	case crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512:
		return nil
	}
	return fmt.Errorf("%w: unsupported hash %v", ErrParam, h)
}

// NewDigest returns a streaming hash for h (SHA-1/224/256/384/512).
func NewDigest(h crypto.Hash) (hash.Hash, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	return h.New(), nil
}

// Digest appends the h digest of msg to dst, without allocating when dst has
// room.
func Digest(dst []byte, h crypto.Hash, msg []byte) ([]byte, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	switch h {
	case crypto.SHA1:
		s := sha1.Sum(msg)
		return append(dst, s[:]...), nil
	case crypto.SHA224:
		s := sha256.Sum224(msg)
		return append(dst, s[:]...), nil
	case crypto.SHA256:
		s := sha256.Sum256(msg)
		return append(dst, s[:]...), nil
	case crypto.SHA384:
		s := sha512.Sum384(msg)
		return append(dst, s[:]...), nil
	default: // crypto.SHA512, the last hash checkHash accepts
		s := sha512.Sum512(msg)
		return append(dst, s[:]...), nil
	}
}
