package mech

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// ParsePKCS8 parses a DER PKCS #8 PrivateKeyInfo holding an RSA key of
// RSAMinBits..RSAMaxBits, an EC key on P-256/P-384/P-521 or an Ed25519 key,
// and returns *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey.
// Malformed DER gives ErrEncoding; other keys an *UnsupportedKeyError.
func ParsePKCS8(der []byte) (crypto.Signer, error) {
	if !oneDERSequence(der) { // x509 ignores trailing data here; we do not
		return nil, fmt.Errorf("%w: PKCS #8 private key: not one DER SEQUENCE", ErrEncoding)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS #8 private key: %v", ErrEncoding, err)
	}
	if err := CheckPrivateKey(k); err != nil {
		return nil, err
	}
	return k.(crypto.Signer), nil
}

// MarshalPKCS8 encodes a supported private key as DER PKCS #8.
func MarshalPKCS8(key crypto.Signer) ([]byte, error) {
	if err := CheckPrivateKey(key); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS #8 private key: %v", ErrEncoding, err)
	}
	return der, nil
}

// ParseSPKI parses a DER SubjectPublicKeyInfo holding a supported key and
// returns *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
func ParseSPKI(der []byte) (crypto.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: SubjectPublicKeyInfo: %v", ErrEncoding, err)
	}
	if err := CheckPublicKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// MarshalSPKI encodes a supported public key as a DER SubjectPublicKeyInfo.
func MarshalSPKI(pub crypto.PublicKey) ([]byte, error) {
	if err := CheckPublicKey(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: SubjectPublicKeyInfo: %v", ErrEncoding, err)
	}
	return der, nil
}

// CheckPrivateKey returns nil for the private keys this package uses, an
// *UnsupportedKeyError otherwise. RSA keys are also validated (ErrEncoding
// when inconsistent).
func CheckPrivateKey(k any) error {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if err := CheckPublicKey(&k.PublicKey); err != nil {
			return err
		}
		if err := k.Validate(); err != nil {
			return fmt.Errorf("%w: RSA private key: %v", ErrEncoding, err)
		}
		return nil
	case *ecdsa.PrivateKey:
		return CheckPublicKey(&k.PublicKey)
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return &UnsupportedKeyError{Reason: ErrKeySize, Type: "Ed25519", Detail: fmt.Sprintf("private key of %d bytes", len(k))}
		}
		return nil
	}
	return &UnsupportedKeyError{Reason: ErrKeyType, Type: fmt.Sprintf("%T", k), Detail: "private key"}
}

// CheckPublicKey returns nil for the public keys this package uses, an
// *UnsupportedKeyError otherwise.
func CheckPublicKey(k any) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N == nil {
			return &UnsupportedKeyError{Reason: ErrKeySize, Type: "RSA", Detail: "no modulus"}
		}
		if bits := k.N.BitLen(); bits < RSAMinBits || bits > RSAMaxBits {
			return &UnsupportedKeyError{Reason: ErrKeySize, Type: "RSA", Detail: fmt.Sprintf("%d bits (want %d..%d)", bits, RSAMinBits, RSAMaxBits)}
		}
		return nil
	case *ecdsa.PublicKey:
		return checkCurve(k.Curve)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return &UnsupportedKeyError{Reason: ErrKeySize, Type: "Ed25519", Detail: fmt.Sprintf("public key of %d bytes", len(k))}
		}
		return nil
	}
	return &UnsupportedKeyError{Reason: ErrKeyType, Type: fmt.Sprintf("%T", k), Detail: "public key"}
}

// oneDERSequence reports whether der is exactly one DER SEQUENCE.
func oneDERSequence(der []byte) bool {
	var (
		in   = cryptobyte.String(der)
		elem cryptobyte.String
	)
	return in.ReadASN1Element(&elem, asn1.SEQUENCE) && in.Empty()
}
