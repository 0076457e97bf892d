package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	"github.com/coffer-hsm/coffer/internal/durable"
)

const (
	keyLen = 32 // node key and masking key: AES-256

	mkBlobV1     = 1
	mkAD         = "coffer store masking key v1"
	recordKeyCtx = "coffer store record v1"
	mkCheckMsg   = "coffer mk id"
)

// keyring holds what the masking key gives: the record sealing key and the
// public fingerprint. It is immutable once built; wipe zeroes what it can.
type keyring struct {
	mk      []byte
	records cipher.AEAD // AES-256-GCM, random nonces, under HKDF(MK, recordKeyCtx)
	check   []byte      // HMAC-SHA256(MK, mkCheckMsg)
}

func newKeyring(mk []byte) (*keyring, error) {
	if len(mk) != keyLen {
		return nil, fmt.Errorf("masking key is %d bytes, want %d", len(mk), keyLen)
	}
	rk, err := hkdf.Key(sha256.New, mk, nil, recordKeyCtx, keyLen)
	if err != nil {
		return nil, fmt.Errorf("derive record key: %w", err)
	}
	defer clear(rk)
	aead, err := newAEAD(rk)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, mk)
	m.Write([]byte(mkCheckMsg))
	return &keyring{mk: append([]byte(nil), mk...), records: aead, check: m.Sum(nil)}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cryptobackend.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

// seal returns the box of a payload whose record header is hdr.
func (k *keyring) seal(hdr, plaintext []byte) []byte {
	return k.records.Seal(nil, nil, plaintext, hdr)
}

// open returns the payload of a box whose record header is hdr.
func (k *keyring) open(hdr, box []byte) ([]byte, error) {
	return k.records.Open(nil, nil, box, hdr)
}

func (k *keyring) wipe() {
	if k != nil {
		clear(k.mk)
	}
}

// CreateNodeKey writes a new random 32-byte node key to path with mode 0600.
// It refuses to overwrite an existing file.
func CreateNodeKey(path string) (err error) {
	key := make([]byte, keyLen)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("store: node key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store: create node key: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err := f.Write(key); err != nil {
		return fmt.Errorf("store: write node key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: sync node key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: close node key %s: %w", path, err)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("store: node key %s: %w", path, err)
	}
	return nil
}

// readNodeKey reads a node key file, refusing one that group or others may
// access, that is not a regular file, or that is not exactly 32 bytes.
func readNodeKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: node key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // the file we opened, not whatever the path names now
	if err != nil {
		return nil, fmt.Errorf("store: node key: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("store: node key %s: not a regular file: %w", path, ErrBadNodeKey)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("store: node key %s: mode %#o allows group or other access, want 0600: %w",
			path, fi.Mode().Perm(), ErrBadNodeKey)
	case fi.Size() != keyLen:
		return nil, fmt.Errorf("store: node key %s: %d bytes, want %d: %w", path, fi.Size(), keyLen, ErrBadNodeKey)
	}
	key := make([]byte, keyLen)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("store: read node key %s: %w", path, err)
	}
	var extra [1]byte
	if n, _ := f.Read(extra[:]); n != 0 {
		clear(key)
		return nil, fmt.Errorf("store: node key %s: grew while being read: %w", path, ErrBadNodeKey)
	}
	return key, nil
}

// sealMaskingKey seals mk under the node key: mkBlobV1 || nonce || ct || tag.
func sealMaskingKey(nodeKey, mk []byte) ([]byte, error) {
	aead, err := newAEAD(nodeKey)
	if err != nil {
		return nil, err
	}
	return aead.Seal([]byte{mkBlobV1}, nil, mk, []byte(mkAD)), nil
}

var errMKBlob = errors.New("malformed sealed masking key")

// openMaskingKey opens a blob made by sealMaskingKey. A blob that parses but
// does not open gives ErrWrongNodeKey.
func openMaskingKey(nodeKey, blob []byte) ([]byte, error) {
	if len(blob) != 1+boxOverhead+keyLen || blob[0] != mkBlobV1 {
		return nil, errMKBlob
	}
	aead, err := newAEAD(nodeKey)
	if err != nil {
		return nil, err
	}
	mk, err := aead.Open(nil, nil, blob[1:], []byte(mkAD))
	if err != nil {
		return nil, ErrWrongNodeKey
	}
	return mk, nil
}
