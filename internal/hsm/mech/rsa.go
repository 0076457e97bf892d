package mech

import (
	"crypto"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"
)

// RSA key sizes. Generation accepts exactly 2048, 3072 and 4096 bits;
// imported keys may have any size from RSAMinBits to RSAMaxBits.
const (
	RSAMinBits = 2048
	RSAMaxBits = 4096
	// RSAExponent is the only public exponent Go generates.
	RSAExponent = 65537
)

// pkcs1v15Overhead is the minimum PKCS #1 v1.5 padding (00 01|02 PS(8+) 00).
const pkcs1v15Overhead = 11

func orDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// GenerateRSA generates an RSA key of bits bits (2048, 3072 or 4096, else
// ErrKeySize) with public exponent e (65537, or 0 for the default; Go
// generates no other, so anything else is ErrParam), and checks it with a
// pairwise sign/verify test (ErrSelfTest on failure).
func GenerateRSA(random io.Reader, bits, e int) (*rsa.PrivateKey, error) {
	switch bits {
	case 2048, 3072, 4096:
	default:
		return nil, &UnsupportedKeyError{Reason: ErrKeySize, Type: "RSA", Detail: fmt.Sprintf("%d bits (want 2048, 3072 or 4096)", bits)}
	}
	if e != 0 && e != RSAExponent {
		return nil, &UnsupportedKeyError{Reason: ErrParam, Type: "RSA", Detail: fmt.Sprintf("public exponent %d (only 65537)", e)}
	}
	k, err := rsa.GenerateKey(orDefault(random), bits)
	if err != nil {
		return nil, fmt.Errorf("mech: generate RSA-%d: %w: %w", bits, ErrSelfTest, err)
	}
	if err := pairwiseRSA(k); err != nil {
		return nil, err
	}
	return k, nil
}

// pairwiseRSA signs a fixed digest with k and verifies it with its public half.
func pairwiseRSA(k *rsa.PrivateKey) error {
	d := pairwiseDigest()
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	if err == nil {
		err = rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d[:], sig)
	}
	if err != nil {
		return fmt.Errorf("mech: RSA pairwise consistency test: %w: %w", ErrSelfTest, err)
	}
	return nil
}

// checkDigest checks that digest has h's size (ErrDataLen) and h is supported.
func checkDigest(h crypto.Hash, digest []byte) error {
	if err := checkHash(h); err != nil {
		return err
	}
	if len(digest) != h.Size() {
		return fmt.Errorf("%w: digest of %d bytes, want %d for %v", ErrDataLen, len(digest), h.Size(), h)
	}
	return nil
}

// rsaError maps a standard-library RSA error onto a sentinel.
func rsaError(op string, sentinel, err error) error {
	if errors.Is(err, rsa.ErrMessageTooLong) {
		sentinel = ErrDataLen
	}
	return fmt.Errorf("mech: %s: %w: %w", op, sentinel, err)
}

// SignPKCS1v15 signs with RSASSA-PKCS1-v1_5. With h zero, digest is a
// complete DER DigestInfo (or any data up to the modulus size minus 11 bytes,
// CKM_RSA_PKCS) and is signed as is; otherwise digest is an h digest and the
// DigestInfo is added.
func SignPKCS1v15(priv *rsa.PrivateKey, h crypto.Hash, digest []byte) ([]byte, error) {
	if h == 0 {
		if err := checkRawPKCS1v15(); err != nil {
			return nil, err
		}
		if len(digest) > priv.Size()-pkcs1v15Overhead {
			return nil, fmt.Errorf("%w: %d bytes to sign with a %d-byte modulus", ErrDataLen, len(digest), priv.Size())
		}
	} else if err := checkDigest(h, digest); err != nil {
		return nil, err
	}
	sig, err := rsa.SignPKCS1v15(nil, priv, h, digest)
	if err != nil {
		return nil, rsaError("RSA PKCS#1 v1.5 sign", ErrParam, err)
	}
	return sig, nil
}

// checkRawPKCS1v15 refuses raw PKCS #1 v1.5 signatures (no hash) in FIPS
// 140-only mode, where the standard library would panic on them.
func checkRawPKCS1v15() error {
	if fips140.Enforced() {
		return fmt.Errorf("%w: raw PKCS #1 v1.5 signatures are not allowed in FIPS 140-only mode", ErrParam)
	}
	return nil
}

// VerifyPKCS1v15 verifies an RSASSA-PKCS1-v1_5 signature over digest, with h
// as in SignPKCS1v15. A signature that is not the modulus size gives
// ErrSignatureLen, any other failure ErrSignatureInvalid.
func VerifyPKCS1v15(pub *rsa.PublicKey, h crypto.Hash, digest, sig []byte) error {
	var err error
	if h == 0 {
		err = checkRawPKCS1v15()
	} else {
		err = checkHash(h)
	}
	if err != nil {
		return err
	}
	if len(sig) != pub.Size() {
		return fmt.Errorf("%w: signature of %d bytes, want %d", ErrSignatureLen, len(sig), pub.Size())
	}
	if err := rsa.VerifyPKCS1v15(pub, h, digest, sig); err != nil {
		return verifyError(err)
	}
	return nil
}

// VerifyPKCS1v15Hash hashes msg with h and verifies sig over the digest.
func VerifyPKCS1v15Hash(pub *rsa.PublicKey, h crypto.Hash, msg, sig []byte) error {
	var buf [64]byte
	d, err := Digest(buf[:0], h, msg)
	if err != nil {
		return err
	}
	return VerifyPKCS1v15(pub, h, d, sig)
}

// PSSParams are the RSASSA-PSS parameters (CK_RSA_PKCS_PSS_PARAMS).
// The standard library uses the message hash for MGF1 too, so MGF must equal
// Hash (ErrParam otherwise). SaltLen is in bytes and must be at least 1: the
// standard library cannot express an empty salt (ErrParam).
type PSSParams struct {
	Hash    crypto.Hash
	MGF     crypto.Hash
	SaltLen int
}

func (p PSSParams) options() (*rsa.PSSOptions, error) {
	if err := checkHash(p.Hash); err != nil {
		return nil, err
	}
	if p.MGF != p.Hash {
		return nil, fmt.Errorf("%w: PSS with MGF1-%v and hash %v: only MGF1 with the message hash is supported", ErrParam, p.MGF, p.Hash)
	}
	if p.SaltLen < 1 {
		return nil, fmt.Errorf("%w: PSS salt length %d, want at least 1", ErrParam, p.SaltLen)
	}
	return &rsa.PSSOptions{SaltLength: p.SaltLen, Hash: p.Hash}, nil
}

// SignPSS signs the p.Hash digest with RSASSA-PSS (CKM_RSA_PKCS_PSS). A salt
// too long for the modulus gives ErrParam.
func SignPSS(random io.Reader, priv *rsa.PrivateKey, p PSSParams, digest []byte) ([]byte, error) {
	opts, err := p.options()
	if err != nil {
		return nil, err
	}
	if err := checkDigest(p.Hash, digest); err != nil {
		return nil, err
	}
	// emLen = ceil((modBits-1)/8) must hold hash, salt and two more bytes.
	if emLen := (priv.N.BitLen() + 6) / 8; p.SaltLen > emLen-p.Hash.Size()-2 {
		return nil, fmt.Errorf("%w: PSS salt of %d bytes too long for the key", ErrParam, p.SaltLen)
	}
	sig, err := rsa.SignPSS(orDefault(random), priv, p.Hash, digest, opts)
	if err != nil {
		return nil, rsaError("RSA PSS sign", ErrParam, err)
	}
	return sig, nil
}

// VerifyPSS verifies an RSASSA-PSS signature over the p.Hash digest with
// exactly p.SaltLen bytes of salt. Parameter errors give ErrParam, a digest of
// the wrong size ErrDataLen, a signature of the wrong size ErrSignatureLen,
// anything else ErrSignatureInvalid.
func VerifyPSS(pub *rsa.PublicKey, p PSSParams, digest, sig []byte) error {
	opts, err := p.options()
	if err != nil {
		return err
	}
	if err := checkDigest(p.Hash, digest); err != nil {
		return err
	}
	if len(sig) != pub.Size() {
		return fmt.Errorf("%w: signature of %d bytes, want %d", ErrSignatureLen, len(sig), pub.Size())
	}
	if err := rsa.VerifyPSS(pub, p.Hash, digest, sig, opts); err != nil {
		return verifyError(err)
	}
	return nil
}

// verifyError is what a failed RSA verification returns: ErrSignatureInvalid,
// or, where FIPS 140-only mode refused the key or the parameters before
// looking at the signature (a key under 2048 bits or of odd size, a public
// exponent of 2¹⁶ or less, a salt longer than the hash), ErrParam saying so.
func verifyError(err error) error {
	if RefusedInFIPSOnlyMode(err) {
		return fmt.Errorf("%w: %w", ErrParam, err)
	}
	return ErrSignatureInvalid
}

// OAEPParams are the RSAES-OAEP parameters (CK_RSA_PKCS_OAEP_PARAMS with
// CKZ_DATA_SPECIFIED source). MGF may differ from Hash.
type OAEPParams struct {
	Hash  crypto.Hash
	MGF   crypto.Hash
	Label []byte
}

func (p OAEPParams) options() (*rsa.OAEPOptions, error) {
	if err := checkHash(p.Hash); err != nil {
		return nil, err
	}
	if err := checkHash(p.MGF); err != nil {
		return nil, fmt.Errorf("MGF1: %w", err)
	}
	return &rsa.OAEPOptions{Hash: p.Hash, MGFHash: p.MGF, Label: p.Label}, nil
}

// EncryptOAEP encrypts msg with RSAES-OAEP. A message longer than the
// modulus size minus 2*hLen+2 gives ErrDataLen.
func EncryptOAEP(random io.Reader, pub *rsa.PublicKey, p OAEPParams, msg []byte) ([]byte, error) {
	opts, err := p.options()
	if err != nil {
		return nil, err
	}
	if len(msg) > pub.Size()-2*p.Hash.Size()-2 {
		return nil, fmt.Errorf("%w: OAEP message of %d bytes too long for the key", ErrDataLen, len(msg))
	}
	ct, err := rsa.EncryptOAEPWithOptions(orDefault(random), pub, msg, opts)
	if err != nil {
		return nil, rsaError("RSA OAEP encrypt", ErrParam, err)
	}
	return ct, nil
}

// DecryptOAEP decrypts an RSAES-OAEP ciphertext. A ciphertext that is not the
// modulus size gives ErrDataLen; every decryption failure gives the single
// error ErrEncryptedDataInvalid.
func DecryptOAEP(priv *rsa.PrivateKey, p OAEPParams, ciphertext []byte) ([]byte, error) {
	opts, err := p.options()
	if err != nil {
		return nil, err
	}
	if len(ciphertext) != priv.Size() {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes, want %d", ErrDataLen, len(ciphertext), priv.Size())
	}
	pt, err := priv.Decrypt(nil, ciphertext, opts)
	if err != nil {
		return nil, ErrEncryptedDataInvalid
	}
	return pt, nil
}

// EncryptPKCS1v15 encrypts msg (at most the modulus size minus 11 bytes, else
// ErrDataLen) with RSAES-PKCS1-v1_5.
func EncryptPKCS1v15(random io.Reader, pub *rsa.PublicKey, msg []byte) ([]byte, error) {
	if len(msg) > pub.Size()-pkcs1v15Overhead {
		return nil, fmt.Errorf("%w: message of %d bytes too long for the key", ErrDataLen, len(msg))
	}
	ct, err := rsa.EncryptPKCS1v15(orDefault(random), pub, msg)
	if err != nil {
		return nil, rsaError("RSA PKCS#1 v1.5 encrypt", ErrParam, err)
	}
	return ct, nil
}

// DecryptPKCS1v15 decrypts an RSAES-PKCS1-v1_5 ciphertext. A ciphertext that
// is not the modulus size gives ErrDataLen; every decryption failure gives the
// single error ErrEncryptedDataInvalid, with nothing else to tell them apart.
// PKCS #1 v1.5 decryption is a padding oracle by design: the device should
// allow it only where PKCS #11 requires it.
func DecryptPKCS1v15(priv *rsa.PrivateKey, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) != priv.Size() {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes, want %d", ErrDataLen, len(ciphertext), priv.Size())
	}
	pt, err := rsa.DecryptPKCS1v15(nil, priv, ciphertext)
	if err != nil {
		return nil, ErrEncryptedDataInvalid
	}
	return pt, nil
}

// RefusedInFIPSOnlyMode reports whether err is a refusal of what Go's FIPS
// 140-3 module, enforced (GODEBUG=fips140=only), does not approve: the
// standard library's and this package's say "FIPS 140-only mode" (the
// standard library has no error value for it, only its message).
func RefusedInFIPSOnlyMode(err error) bool {
	return fips140.Enforced() && err != nil && strings.Contains(err.Error(), "FIPS 140-only mode")
}
