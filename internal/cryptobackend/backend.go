// Package cryptobackend says which implementation backs Go's crypto/* in
// this binary (Go's own FIPS 140-3 module, or BoringSSL's through
// GOEXPERIMENT=boringcrypto), and gives the few constructors whose
// standard-library form works with only one of them.
package cryptobackend

import (
	"crypto/cipher"
	"crypto/fips140"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
)

// Backend names.
const (
	Go           = "go"           // Go's own crypto (its FIPS 140-3 module)
	BoringCrypto = "boringcrypto" // BoringSSL's FIPS module, GOEXPERIMENT=boringcrypto
)

// Info describes the running crypto backend.
type Info struct {
	// Name is Go or BoringCrypto.
	Name string
	// FIPS140 reports Go's FIPS 140-3 mode (GODEBUG=fips140=on or only).
	// BoringCrypto binaries never run in it: Go refuses the two together.
	FIPS140 bool
	// Enforced reports GODEBUG=fips140=only: the standard library refuses
	// what its FIPS 140-3 module does not approve.
	Enforced bool
	// ModuleVersion is the version of Go's FIPS 140-3 module when FIPS140
	// is on: a frozen module's ("v1.0.0-c2097c7c", built with GOFIPS140),
	// or "latest" for the module of the Go release itself, which is not a
	// validated one.
	ModuleVersion string
}

// FIPSModeReady reports whether a FIPS-mode HSM may run here: on
// BoringSSL's module (BoringCrypto), or on Go's with its rules enforced
// (GODEBUG=fips140=only from process start).
func (i Info) FIPSModeReady() bool { return i.Name == BoringCrypto || i.FIPS140 && i.Enforced }

// Module names the FIPS 140-3 module in use, "" when none is: "BoringCrypto"
// or "Go Cryptographic Module v1.0.0-c2097c7c".
func (i Info) Module() string {
	switch {
	case i.Name == BoringCrypto:
		return "BoringCrypto"
	case i.FIPS140:
		return "Go Cryptographic Module " + i.ModuleVersion
	}
	return ""
}

// String is the form `coffer version` prints: "go", "boringcrypto", or in
// Go's FIPS 140-3 mode "go fips140 (Go Cryptographic Module VERSION)",
// "fips140=only" instead of "fips140" when it is enforced.
func (i Info) String() string {
	switch {
	case !i.FIPS140:
		return i.Name
	case i.Enforced:
		return i.Name + " fips140=only (" + i.Module() + ")"
	}
	return i.Name + " fips140 (" + i.Module() + ")"
}

// Current reports the backend of this process.
func Current() Info {
	name := Go
	if boringEnabled() {
		name = BoringCrypto
	}
	i := Info{Name: name, FIPS140: fips140.Enabled()}
	if i.FIPS140 {
		i.Enforced = fips140.Enforced()
		i.ModuleVersion = fips140.Version()
	}
	return i
}

const (
	gcmNonceSize = 12
	gcmTagSize   = 16
)

// NewGCMWithRandomNonce is cipher.NewGCMWithRandomNonce for a block from
// crypto/aes.NewCipher, whichever backend made it. The standard library's
// accepts only Go's own AES block; under BoringCrypto, aes.NewCipher returns
// BoringSSL's, and this returns BoringSSL's GCM with a 12-byte nonce read
// from crypto/rand (BoringSSL's DRBG there) for each Seal. The format is the
// same on both: nonce || ciphertext || tag, so data sealed by one binary
// opens in the other.
func NewGCMWithRandomNonce(b cipher.Block) (cipher.AEAD, error) {
	a, err := cipher.NewGCMWithRandomNonce(b)
	if err == nil || !boringEnabled() {
		return a, err
	}
	// FIPS 140-only mode, which forbids cipher.NewGCM, cannot be on with
	// BoringCrypto, so this path never loosens it.
	g, gerr := cipher.NewGCM(b)
	if gerr != nil {
		return nil, fmt.Errorf("%w (BoringCrypto GCM: %w)", err, gerr)
	}
	if g.NonceSize() != gcmNonceSize || g.Overhead() != gcmTagSize {
		return nil, errors.New("cryptobackend: GCM of unexpected nonce or tag size")
	}
	return randomNonceGCM{g}, nil
}

type randomNonceGCM struct{ g cipher.AEAD }

func (randomNonceGCM) NonceSize() int { return 0 }
func (randomNonceGCM) Overhead() int  { return gcmNonceSize + gcmTagSize }

func (a randomNonceGCM) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != 0 {
		panic("cryptobackend: non-empty nonce passed to GCM with random nonce")
	}
	n := len(dst)
	ret := slices.Grow(dst, gcmNonceSize+len(plaintext)+gcmTagSize)[:n+gcmNonceSize+len(plaintext)]
	// The plaintext moves to its place first (copy is a memmove), so a
	// caller sealing in place (dst = plaintext[:0]) loses nothing to the
	// nonce written before it.
	body := ret[n+gcmNonceSize:]
	copy(body, plaintext)
	iv := ret[n : n+gcmNonceSize]
	rand.Read(iv) // never fails: crypto/rand crashes the program rather
	a.g.Seal(body[:0], iv, body, additionalData)
	return ret[:n+gcmNonceSize+len(plaintext)+gcmTagSize]
}

func (a randomNonceGCM) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != 0 {
		panic("cryptobackend: non-empty nonce passed to GCM with random nonce")
	}
	if len(ciphertext) < gcmNonceSize+gcmTagSize {
		return nil, errors.New("cipher: message authentication failed")
	}
	var iv [gcmNonceSize]byte
	copy(iv[:], ciphertext)
	return a.g.Open(dst, iv[:], ciphertext[gcmNonceSize:], additionalData)
}
