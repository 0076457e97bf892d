package mech

import (
	"bytes"
	"crypto/mlkem"
	"fmt"
)

// ML-KEM (FIPS 203): ML-KEM-768 and ML-KEM-1024 (the standard library has
// no ML-KEM-512). Decapsulation keys are their 64-byte seed (d || z), as
// the standard library keeps them. The shared secret is 32 bytes.

// MLKEMSharedKeySize is the length of an ML-KEM shared secret.
const MLKEMSharedKeySize = mlkem.SharedKeySize

// MLKEMSeedSize is the length of a decapsulation key's seed.
const MLKEMSeedSize = mlkem.SeedSize

// MLKEMDecapsulationKey is an ML-KEM-768 or ML-KEM-1024 decapsulation key.
type MLKEMDecapsulationKey interface {
	Bytes() []byte
	Decapsulate(ciphertext []byte) ([]byte, error)
}

// MLKEMEncapsulationKey is an ML-KEM-768 or ML-KEM-1024 encapsulation key.
type MLKEMEncapsulationKey interface {
	Bytes() []byte
	Encapsulate() (sharedKey, ciphertext []byte)
}

// GenerateMLKEM generates an ML-KEM-768 or ML-KEM-1024 key (size 768 or
// 1024, else ErrKeySize) and checks it with a pairwise
// encapsulate/decapsulate test.
func GenerateMLKEM(size int) (MLKEMDecapsulationKey, error) {
	var dk MLKEMDecapsulationKey
	var err error
	switch size {
	case 768:
		dk, err = mlkem.GenerateKey768()
	case 1024:
		dk, err = mlkem.GenerateKey1024()
	default:
		return nil, fmt.Errorf("%w: ML-KEM-%d", ErrKeySize, size)
	}
	if err != nil {
		return nil, fmt.Errorf("mech: generate ML-KEM-%d: %w: %w", size, ErrSelfTest, err)
	}
	ss, ct := MLKEMPublic(dk).Encapsulate()
	got, err := dk.Decapsulate(ct)
	if err != nil || !bytes.Equal(got, ss) {
		return nil, fmt.Errorf("mech: ML-KEM-%d pairwise consistency test: %w", size, ErrSelfTest)
	}
	return dk, nil
}

// MLKEMFromSeed returns the decapsulation key for a 64-byte seed.
func MLKEMFromSeed(size int, seed []byte) (MLKEMDecapsulationKey, error) {
	if len(seed) != mlkem.SeedSize {
		return nil, fmt.Errorf("%w: ML-KEM seed of %d bytes, want %d", ErrEncoding, len(seed), mlkem.SeedSize)
	}
	var dk MLKEMDecapsulationKey
	var err error
	switch size {
	case 768:
		dk, err = mlkem.NewDecapsulationKey768(seed)
	case 1024:
		dk, err = mlkem.NewDecapsulationKey1024(seed)
	default:
		return nil, fmt.Errorf("%w: ML-KEM-%d", ErrKeySize, size)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: ML-KEM-%d seed: %w", ErrEncoding, size, err)
	}
	return dk, nil
}

// ParseMLKEMPublicKey decodes an encoded encapsulation key.
func ParseMLKEMPublicKey(size int, b []byte) (MLKEMEncapsulationKey, error) {
	var ek MLKEMEncapsulationKey
	var err error
	switch size {
	case 768:
		ek, err = mlkem.NewEncapsulationKey768(b)
	case 1024:
		ek, err = mlkem.NewEncapsulationKey1024(b)
	default:
		return nil, fmt.Errorf("%w: ML-KEM-%d", ErrKeySize, size)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: ML-KEM-%d encapsulation key: %w", ErrEncoding, size, err)
	}
	return ek, nil
}

// MLKEMPublic returns a decapsulation key's encapsulation key.
func MLKEMPublic(dk MLKEMDecapsulationKey) MLKEMEncapsulationKey {
	switch k := dk.(type) {
	case *mlkem.DecapsulationKey768:
		return k.EncapsulationKey()
	case *mlkem.DecapsulationKey1024:
		return k.EncapsulationKey()
	}
	return nil
}

// MLKEMSize returns 768 or 1024 for an ML-KEM key of either half, 0 for
// anything else.
func MLKEMSize(k any) int {
	switch k.(type) {
	case *mlkem.DecapsulationKey768, *mlkem.EncapsulationKey768:
		return 768
	case *mlkem.DecapsulationKey1024, *mlkem.EncapsulationKey1024:
		return 1024
	}
	return 0
}

// MLKEMCiphertextSize is the ciphertext length of ML-KEM-768 or -1024.
func MLKEMCiphertextSize(size int) int {
	if size == 1024 {
		return mlkem.CiphertextSize1024
	}
	return mlkem.CiphertextSize768
}

// DecapsulateMLKEM returns the shared secret of ciphertext: ErrDataLen for
// a ciphertext of the wrong length. (ML-KEM rejects implicitly: a wrong
// ciphertext of the right length gives an unrelated secret, not an error.)
func DecapsulateMLKEM(dk MLKEMDecapsulationKey, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) != MLKEMCiphertextSize(MLKEMSize(dk)) {
		return nil, fmt.Errorf("%w: ML-KEM ciphertext of %d bytes", ErrDataLen, len(ciphertext))
	}
	ss, err := dk.Decapsulate(ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncryptedDataInvalid, err)
	}
	return ss, nil
}
