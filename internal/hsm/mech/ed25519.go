package mech

import (
	"crypto/ed25519"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Pure Ed25519 (RFC 8032, CKM_EDDSA without parameters). Ed25519ph and
// Ed25519ctx are not offered.

// CKA_EC_PARAMS values naming Ed25519 (PKCS #11 3.0 §2.3.10): the OID
// id-Ed25519 1.3.101.112, or the PrintableString "edwards25519".
const (
	oidEd25519  = "\x06\x03\x2b\x65\x70"
	nameEd25519 = "\x13\x0cedwards25519"
)

// IsEd25519Params reports whether der (CKA_EC_PARAMS) names Ed25519.
func IsEd25519Params(der []byte) bool {
	return string(der) == oidEd25519 || string(der) == nameEd25519
}

// Ed25519OID returns the DER OID of Ed25519, for CKA_EC_PARAMS.
func Ed25519OID() []byte { return []byte(oidEd25519) }

// GenerateEd25519 generates an Ed25519 key from random (nil: the secure
// default; unlike the other generators, the standard library honours a
// non-nil reader here) and checks it with a pairwise sign/verify test.
func GenerateEd25519(random io.Reader) (ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, fmt.Errorf("mech: generate Ed25519: %w: %w", ErrSelfTest, err)
	}
	d := pairwiseDigest()
	if !ed25519.Verify(pub, d[:], ed25519.Sign(priv, d[:])) {
		return nil, fmt.Errorf("mech: Ed25519 pairwise consistency test: %w", ErrSelfTest)
	}
	return priv, nil
}

// Ed25519FromSeed returns the private key for a 32-byte RFC 8032 private key
// (the seed, as in CKA_VALUE); another length gives ErrEncoding.
func Ed25519FromSeed(seed []byte) (ed25519.PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: Ed25519 private key of %d bytes, want %d", ErrEncoding, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParseEd25519Point returns the public key given as 32 raw bytes or wrapped
// in a DER OCTET STRING (CKA_EC_POINT); anything else gives ErrEncoding.
func ParseEd25519Point(b []byte) (ed25519.PublicKey, error) {
	if len(b) == ed25519.PublicKeySize {
		return ed25519.PublicKey(b), nil
	}
	var (
		in  = cryptobyte.String(b)
		raw cryptobyte.String
	)
	if !in.ReadASN1(&raw, asn1.OCTET_STRING) || !in.Empty() || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: Ed25519 point of %d bytes", ErrEncoding, len(b))
	}
	return ed25519.PublicKey(raw), nil
}

// MarshalEd25519PointDER returns pub wrapped in a DER OCTET STRING.
func MarshalEd25519PointDER(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrKeySize, len(pub))
	}
	return append([]byte{0x04, ed25519.PublicKeySize}, pub...), nil
}

// SignEd25519 signs msg with pure Ed25519. A private key of the wrong length
// gives ErrKeySize.
func SignEd25519(priv ed25519.PrivateKey, msg []byte) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: Ed25519 private key of %d bytes", ErrKeySize, len(priv))
	}
	return ed25519.Sign(priv, msg), nil
}

// VerifyEd25519 verifies a pure Ed25519 signature. A public key of the wrong
// length gives ErrKeySize, a signature that is not 64 bytes ErrSignatureLen,
// a bad one ErrSignatureInvalid.
func VerifyEd25519(pub ed25519.PublicKey, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrKeySize, len(pub))
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: Ed25519 signature of %d bytes, want %d", ErrSignatureLen, len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return ErrSignatureInvalid
	}
	return nil
}
