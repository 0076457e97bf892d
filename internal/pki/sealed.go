package pki

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
)

// The cluster key at rest. Whoever holds the cluster key can mint node
// certificates, so it is never written in the clear: SealClusterKey seals
// its PKCS#8 DER with AES-256-GCM under a sealing key kept apart from it
// (the control plane keeps it in its own data directory and hands it to
// the HSM-side tools on stdin; `coffer hsm init` keeps it outside the
// cluster directory). The sealed file is
//
//	sealedKeyMagic | nonce (12) | ciphertext | tag (16)
//
// with sealedKeyMagic as the associated data. It is not PEM: no tool takes
// it for a private key.

const (
	sealedKeyMagic = "coffer sealed cluster key v1\x00"
	// SealingKeySize is the length of a sealing key: AES-256.
	SealingKeySize = 32
)

// ErrSealed: a sealed cluster key that does not open (wrong sealing key,
// damaged file), or a sealing key that is malformed.
var ErrSealed = errors.New("sealed cluster key does not open")

func sealingAEAD(sealingKey []byte) (cipher.AEAD, error) {
	if len(sealingKey) != SealingKeySize {
		return nil, refusef(ErrSealed, "sealing key", nil, "%d bytes, want %d", len(sealingKey), SealingKeySize)
	}
	block, err := aes.NewCipher(sealingKey)
	if err != nil {
		return nil, refuse(ErrSealed, "sealing key", nil, err)
	}
	aead, err := cryptobackend.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, refuse(ErrSealed, "sealing key", nil, err)
	}
	return aead, nil
}

// SealClusterKey returns key sealed under sealingKey.
func SealClusterKey(sealingKey []byte, key crypto.Signer) ([]byte, error) {
	aead, err := sealingAEAD(sealingKey)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, refuse(ErrMalformedKey, "cluster key", nil, err)
	}
	defer clear(der)
	return aead.Seal([]byte(sealedKeyMagic), nil, der, []byte(sealedKeyMagic)), nil
}

// IsSealedClusterKey reports whether b is in the sealed format (it may still
// fail to open).
func IsSealedClusterKey(b []byte) bool { return bytes.HasPrefix(b, []byte(sealedKeyMagic)) }

// OpenClusterKey opens a key SealClusterKey sealed.
func OpenClusterKey(sealingKey, sealed []byte) (crypto.Signer, error) {
	aead, err := sealingAEAD(sealingKey)
	if err != nil {
		return nil, err
	}
	if !IsSealedClusterKey(sealed) {
		return nil, refusef(ErrSealed, "cluster key", nil, "not a sealed cluster key")
	}
	der, err := aead.Open(nil, nil, sealed[len(sealedKeyMagic):], []byte(sealedKeyMagic))
	if err != nil {
		return nil, refusef(ErrSealed, "cluster key", nil, "wrong sealing key or damaged file")
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, refuse(ErrMalformedKey, "cluster key", nil, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, refusef(ErrMalformedKey, "cluster key", nil, "%T is not a signing key", k)
	}
	return s, nil
}

// EncodeSealingKey is the text form of a sealing key: hex and a newline.
func EncodeSealingKey(k []byte) []byte { return append(hex.AppendEncode(nil, k), '\n') }

// DecodeSealingKey reads what EncodeSealingKey wrote.
func DecodeSealingKey(b []byte) ([]byte, error) {
	k, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(k) != SealingKeySize {
		return nil, refusef(ErrSealed, "sealing key", nil, "want %d hex digits", 2*SealingKeySize)
	}
	return k, nil
}

// SealingKeyFile reads the sealing key at path; if the file does not exist
// and create is set, it makes a new random one there (mode 0600, directory
// 0700) first.
func SealingKeyFile(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		k := make([]byte, SealingKeySize)
		rand.Read(k)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("sealing key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sealing key: %w", err)
		}
		_, werr := f.Write(EncodeSealingKey(k))
		serr := f.Sync()
		if err := errors.Join(werr, serr, f.Close()); err != nil {
			return nil, fmt.Errorf("sealing key %s: %w", path, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	k, err := DecodeSealingKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}
