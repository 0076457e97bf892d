package mech

import (
	"crypto/mldsa"
	"fmt"
)

// ML-DSA (FIPS 204), pure: the message is signed as given, with an optional
// context string of at most 255 bytes. HashML-DSA and external μ are not
// offered. Private keys are their 32-byte seed (FIPS 204's ξ), as the
// standard library keeps them.

// MLDSAParams returns the parameter set named "44", "65" or "87".
func MLDSAParams(level int) (mldsa.Parameters, error) {
	switch level {
	case 44:
		return mldsa.MLDSA44(), nil
	case 65:
		return mldsa.MLDSA65(), nil
	case 87:
		return mldsa.MLDSA87(), nil
	}
	return mldsa.Parameters{}, fmt.Errorf("%w: ML-DSA-%d", ErrKeySize, level)
}

// GenerateMLDSA generates an ML-DSA key and checks it with a pairwise
// sign/verify test.
func GenerateMLDSA(p mldsa.Parameters) (*mldsa.PrivateKey, error) {
	k, err := mldsa.GenerateKey(p)
	if err != nil {
		return nil, fmt.Errorf("mech: generate %s: %w: %w", p, ErrSelfTest, err)
	}
	d := pairwiseDigest()
	sig, err := k.Sign(nil, d[:], nil)
	if err != nil || mldsa.Verify(k.PublicKey(), d[:], sig, nil) != nil {
		return nil, fmt.Errorf("mech: %s pairwise consistency test: %w", p, ErrSelfTest)
	}
	return k, nil
}

// MLDSAFromSeed returns the private key for a 32-byte seed; another length
// gives ErrEncoding.
func MLDSAFromSeed(p mldsa.Parameters, seed []byte) (*mldsa.PrivateKey, error) {
	if len(seed) != mldsa.PrivateKeySize {
		return nil, fmt.Errorf("%w: %s seed of %d bytes, want %d", ErrEncoding, p, len(seed), mldsa.PrivateKeySize)
	}
	k, err := mldsa.NewPrivateKey(p, seed)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrEncoding, p, err)
	}
	return k, nil
}

// ParseMLDSAPublicKey decodes an encoded ML-DSA public key.
func ParseMLDSAPublicKey(p mldsa.Parameters, b []byte) (*mldsa.PublicKey, error) {
	if len(b) != p.PublicKeySize() {
		return nil, fmt.Errorf("%w: %s public key of %d bytes, want %d", ErrEncoding, p, len(b), p.PublicKeySize())
	}
	k, err := mldsa.NewPublicKey(p, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s public key: %w", ErrEncoding, p, err)
	}
	return k, nil
}

// SignMLDSA signs msg under context ctx (at most 255 bytes, else ErrParam):
// hedged (with fresh randomness, FIPS 204's default) unless deterministic.
func SignMLDSA(k *mldsa.PrivateKey, msg, ctx []byte, deterministic bool) ([]byte, error) {
	if len(ctx) > 255 {
		return nil, fmt.Errorf("%w: ML-DSA context of %d bytes (at most 255)", ErrParam, len(ctx))
	}
	opts := &mldsa.Options{Context: string(ctx)}
	var sig []byte
	var err error
	if deterministic {
		sig, err = k.SignDeterministic(msg, opts)
	} else {
		sig, err = k.Sign(nil, msg, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("mech: ML-DSA sign: %w", err)
	}
	return sig, nil
}

// VerifyMLDSA checks sig over msg under context ctx: ErrSignatureLen for a
// signature of the wrong size, ErrSignatureInvalid for a wrong one.
func VerifyMLDSA(k *mldsa.PublicKey, msg, ctx, sig []byte) error {
	if len(ctx) > 255 {
		return fmt.Errorf("%w: ML-DSA context of %d bytes (at most 255)", ErrParam, len(ctx))
	}
	if len(sig) != k.Parameters().SignatureSize() {
		return ErrSignatureLen
	}
	if err := mldsa.Verify(k, msg, sig, &mldsa.Options{Context: string(ctx)}); err != nil {
		return ErrSignatureInvalid
	}
	return nil
}
