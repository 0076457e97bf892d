package mech

import (
	"crypto/x509"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// ParsePKCS8 parses a DER PKCS #8 PrivateKeyInfo, which must be exactly
// one DER SEQUENCE: x509.ParsePKCS8PrivateKey alone takes the key and
// ignores anything after it. Malformed DER gives ErrEncoding. Which keys
// the device takes is its own rule (hsm's privateMaterial).
func ParsePKCS8(der []byte) (any, error) {
	if !oneDERSequence(der) {
		return nil, fmt.Errorf("%w: PKCS #8 private key: not one DER SEQUENCE", ErrEncoding)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS #8 private key: %v", ErrEncoding, err)
	}
	return k, nil
}

// oneDERSequence reports whether der is exactly one DER SEQUENCE.
func oneDERSequence(der []byte) bool {
	var (
		in   = cryptobyte.String(der)
		elem cryptobyte.String
	)
	return in.ReadASN1Element(&elem, asn1.SEQUENCE) && in.Empty()
}
