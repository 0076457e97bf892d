package pki

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealClusterKey(t *testing.T) {
	key, err := NewClusterKey()
	if err != nil {
		t.Fatal(err)
	}
	sk, err := SealingKeyFile(filepath.Join(t.TempDir(), "d", "sealing.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealClusterKey(sk, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodePrivateKeyPEM(sealed); err == nil || bytes.Contains(sealed, []byte("PRIVATE KEY")) {
		t.Fatal("a sealed key reads as a PEM private key")
	}
	got, err := OpenClusterKey(sk, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !got.(*ecdsa.PrivateKey).Equal(key) {
		t.Fatal("opened another key")
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	other := bytes.Clone(sk)
	other[0] ^= 1
	plain, err := EncodePrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		sk     []byte
		sealed []byte
	}{
		{"another sealing key", other, sealed},
		{"a flipped bit", sk, flipped},
		{"cut short", sk, sealed[:len(sealedKeyMagic)+10]},
		{"plaintext PEM", sk, plain},
		{"short sealing key", sk[:16], sealed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := OpenClusterKey(tc.sk, tc.sealed); !errors.Is(err, ErrSealed) {
				t.Fatalf("OpenClusterKey = %v, want ErrSealed", err)
			}
		})
	}
}

func TestSealingKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sealing.key")
	if _, err := SealingKeyFile(path, false); err == nil {
		t.Fatal("a missing sealing key file without create was accepted")
	}
	k, err := SealingKeyFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sealing key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	again, err := SealingKeyFile(path, true)
	if err != nil || !bytes.Equal(again, k) {
		t.Fatalf("second read = %x, %v; want the same key", again, err)
	}
	if err := os.WriteFile(path, []byte("zz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := SealingKeyFile(path, true); !errors.Is(err, ErrSealed) {
		t.Fatalf("malformed file: %v, want ErrSealed", err)
	}
}
