package mech

import (
	"crypto"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"io"
)

// Sign and verify helpers the device does not use (it hashes through its
// own operations): the tests' references.

// VerifyCMAC checks mac against the AES-CMAC of msg truncated to macLen
// bytes, in constant time. See VerifyMAC for the errors.
func VerifyCMAC(b cipher.Block, msg, mac []byte, macLen int) error {
	m, err := NewCMAC(b)
	if err != nil {
		return err
	}
	m.Write(msg)
	return VerifyMAC(m, mac, macLen)
}

// SignECDSAHash hashes msg with h and signs the digest (CKM_ECDSA_SHA*).
func SignECDSAHash(random io.Reader, priv *ecdsa.PrivateKey, h crypto.Hash, msg []byte) ([]byte, error) {
	var buf [64]byte
	d, err := Digest(buf[:0], h, msg)
	if err != nil {
		return nil, err
	}
	return SignECDSA(random, priv, d)
}

// ECDSASigToDER converts a PKCS #11 r||s signature for c to an ASN.1 DER
// ECDSA-Sig-Value. A length other than twice c's byte length is ErrEncoding.
func ECDSASigToDER(c elliptic.Curve, rs []byte) ([]byte, error) {
	if err := checkCurve(c); err != nil {
		return nil, err
	}
	n := curveLen(c)
	if len(rs) != 2*n {
		return nil, fmt.Errorf("%w: r||s of %d bytes, want %d", ErrEncoding, len(rs), 2*n)
	}
	return appendECDSADER(nil, rs[:n], rs[n:]), nil
}

// SignPKCS1v15Hash hashes msg with h and signs the digest (CKM_SHA*_RSA_PKCS).
func SignPKCS1v15Hash(priv *rsa.PrivateKey, h crypto.Hash, msg []byte) ([]byte, error) {
	var buf [64]byte
	d, err := Digest(buf[:0], h, msg)
	if err != nil {
		return nil, err
	}
	return SignPKCS1v15(priv, h, d)
}

// SignPSSHash hashes msg with p.Hash and signs the digest (CKM_SHA*_RSA_PKCS_PSS).
func SignPSSHash(random io.Reader, priv *rsa.PrivateKey, p PSSParams, msg []byte) ([]byte, error) {
	if _, err := p.options(); err != nil {
		return nil, err
	}
	var buf [64]byte
	d, err := Digest(buf[:0], p.Hash, msg)
	if err != nil {
		return nil, err
	}
	return SignPSS(random, priv, p, d)
}

// VerifyPSSHash hashes msg with p.Hash and verifies sig over the digest.
func VerifyPSSHash(pub *rsa.PublicKey, p PSSParams, msg, sig []byte) error {
	if _, err := p.options(); err != nil {
		return err
	}
	var buf [64]byte
	d, err := Digest(buf[:0], p.Hash, msg)
	if err != nil {
		return err
	}
	return VerifyPSS(pub, p, d, sig)
}
