package mech

import (
	"bytes"
	"crypto/cipher"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// unhex decodes a hex string, ignoring spaces.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func mustAES(t testing.TB, key []byte) cipher.Block {
	t.Helper()
	b, err := NewAES(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testBytes returns n deterministic pseudo-random bytes.
func testBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x636f66666572))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func wantBytes(t testing.TB, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
}

// RSA keys are slow to generate, so the tests share one per size. The cache
// is test-only state.
var rsaKeys = struct {
	sync.Mutex
	m map[int]*rsa.PrivateKey
}{m: map[int]*rsa.PrivateKey{}}

func testRSAKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	rsaKeys.Lock()
	defer rsaKeys.Unlock()
	if k := rsaKeys.m[bits]; k != nil {
		return k
	}
	k, err := GenerateRSA(nil, bits, 0)
	if err != nil {
		t.Fatal(err)
	}
	rsaKeys.m[bits] = k
	return k
}

func TestErrorWrapping(t *testing.T) {
	if !errors.Is(ErrAuthFailed, ErrEncryptedDataInvalid) {
		t.Error("ErrAuthFailed does not wrap ErrEncryptedDataInvalid")
	}
	if !errors.Is(ErrSignatureLen, ErrSignatureInvalid) {
		t.Error("ErrSignatureLen does not wrap ErrSignatureInvalid")
	}
	var err error = &UnsupportedKeyError{Reason: ErrKeySize, Type: "RSA", Detail: "1024 bits"}
	var uke *UnsupportedKeyError
	if !errors.Is(err, ErrKeySize) || !errors.As(err, &uke) || uke.Detail != "1024 bits" {
		t.Errorf("UnsupportedKeyError: Is/As failed for %v", err)
	}
	if got := err.Error(); !strings.Contains(got, "RSA 1024 bits") {
		t.Errorf("Error() = %q", got)
	}
}

// skipRefusedByFIPSOnly skips a known-answer case that Go's enforced FIPS
// 140-3 module refuses (GODEBUG=fips140=only: SHA-1, HMAC keys under 112
// bits, GCM under a caller's IV): there the refusal, saying so, is the
// right answer. Any other error fails the test.
func skipRefusedByFIPSOnly(t *testing.T, err error) {
	t.Helper()
	if RefusedInFIPSOnlyMode(err) {
		t.Skipf("refused in FIPS 140-only mode: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}
