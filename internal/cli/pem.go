package cli

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/mldsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// PEMKey is a key read from a PEM file: a private key as PKCS #8 DER, or a
// public key as SubjectPublicKeyInfo DER.
type PEMKey struct {
	Private bool
	DER     []byte
	Key     any // *rsa.PrivateKey, *ecdsa.PublicKey, ed25519.PrivateKey ...
}

// ReadPEMKey reads the first key of a PEM file: PRIVATE KEY (PKCS #8), RSA
// PRIVATE KEY (PKCS #1), EC PRIVATE KEY (SEC 1), PUBLIC KEY (SPKI) or RSA
// PUBLIC KEY (PKCS #1).
func ReadPEMKey(path string) (PEMKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PEMKey{}, Failf("%w", err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return PEMKey{}, Usagef("%s: no key in PEM format (want PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY, PUBLIC KEY or RSA PUBLIC KEY)", path)
		}
		k, err := parsePEMBlock(blk)
		if err != nil {
			return PEMKey{}, Usagef("%s: %s: %v", path, blk.Type, err)
		}
		if k.DER != nil {
			return k, nil
		}
	}
}

func parsePEMBlock(blk *pem.Block) (PEMKey, error) {
	var priv any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return PEMKey{}, err
		}
		return PEMKey{DER: blk.Bytes, Key: pub}, nil
	case "RSA PUBLIC KEY":
		pub, err := x509.ParsePKCS1PublicKey(blk.Bytes)
		if err != nil {
			return PEMKey{}, err
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		return PEMKey{DER: der, Key: pub}, err
	default:
		return PEMKey{}, nil // not a key: try the next block
	}
	if err != nil {
		return PEMKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	return PEMKey{Private: true, DER: der, Key: priv}, err
}

// KeyTypeClass names the key as --key-type-class does: rsa-public,
// ec-private, ed25519-public ...
func (k PEMKey) KeyTypeClass() string {
	kind := "unknown"
	switch k.Key.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		kind = "rsa"
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		kind = "ec"
	case ed25519.PrivateKey, ed25519.PublicKey:
		kind = "ed25519"
	case *mldsa.PrivateKey, *mldsa.PublicKey:
		kind = "ml-dsa"
	}
	if k.Private {
		return kind + "-private"
	}
	return kind + "-public"
}

// Signer returns the private key as a crypto.Signer.
func (k PEMKey) Signer() (crypto.Signer, error) {
	s, ok := k.Key.(crypto.Signer)
	if !k.Private || !ok {
		return nil, fmt.Errorf("not a private key")
	}
	return s, nil
}

// Public returns the key's public key.
func (k PEMKey) Public() crypto.PublicKey {
	if s, ok := k.Key.(crypto.Signer); ok {
		return s.Public()
	}
	return k.Key
}

// PublicKeyPEM encodes SubjectPublicKeyInfo DER as PEM.
func PublicKeyPEM(spki []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
}

// PrivateKeyPEM encodes PKCS #8 DER as PEM.
func PrivateKeyPEM(pkcs8 []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}
