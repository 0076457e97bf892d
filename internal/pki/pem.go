package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// PEM block types.
const (
	pemCertificate  = "CERTIFICATE"
	pemCSR          = "CERTIFICATE REQUEST"
	pemCSRLegacy    = "NEW CERTIFICATE REQUEST" // older OpenSSL and Windows tools
	pemPKCS8        = "PRIVATE KEY"
	pemPKCS1        = "RSA PRIVATE KEY"
	pemSEC1         = "EC PRIVATE KEY"
	procTypeHeader  = "Proc-Type"
	encryptedMarker = "ENCRYPTED"
)

// pemBlocks returns every PEM block in data. Text around the blocks is
// ignored, as OpenSSL does (`openssl x509 -text` prints text before the
// PEM). Encrypted blocks are refused.
func pemBlocks(data []byte, what string) ([]*pem.Block, error) {
	var blocks []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if v, ok := b.Headers[procTypeHeader]; ok && bytes.Contains([]byte(v), []byte(encryptedMarker)) {
			return nil, refuse(ErrPEMEncrypted, what, nil, nil)
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, refuse(ErrNoPEM, what, nil, nil)
	}
	return blocks, nil
}

// EncodeCertificatesPEM encodes certificates as consecutive CERTIFICATE
// blocks, in order (a leaf first, then its issuers).
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		// pem.Encode to a bytes.Buffer fails only on invalid headers; there are none.
		_ = pem.Encode(&buf, &pem.Block{Type: pemCertificate, Bytes: c.Raw})
	}
	return buf.Bytes()
}

// DecodeCertificatesPEM parses every CERTIFICATE block of data, in order.
// what names the input in errors ("signed certificate", "trust anchor").
// Any other block type is refused with ErrPEMType.
func DecodeCertificatesPEM(data []byte, what string) ([]*x509.Certificate, error) {
	blocks, err := pemBlocks(data, what)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != pemCertificate {
			return nil, refusef(ErrPEMType, what, nil, "block %d is %q, want %q", i+1, b.Type, pemCertificate)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, refuse(ErrMalformedCertificate, what, nil, fmt.Errorf("block %d: %w", i+1, err))
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// DecodeCertificatePEM parses data that must hold exactly one certificate.
func DecodeCertificatePEM(data []byte, what string) (*x509.Certificate, error) {
	certs, err := DecodeCertificatesPEM(data, what)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, refusef(ErrPEMCount, what, nil, "found %d certificates, want exactly 1", len(certs))
	}
	return certs[0], nil
}

// EncodeCSRPEM encodes a CSR as a CERTIFICATE REQUEST block.
func EncodeCSRPEM(csr *x509.CertificateRequest) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: csr.Raw})
}

// DecodeCSRPEM parses data that must hold exactly one CSR, and checks the
// CSR's self-signature (proof that its maker holds the private key).
func DecodeCSRPEM(data []byte) (*x509.CertificateRequest, error) {
	const what = "certificate signing request"
	blocks, err := pemBlocks(data, what)
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 {
		return nil, refusef(ErrPEMCount, what, nil, "found %d PEM blocks, want exactly 1", len(blocks))
	}
	b := blocks[0]
	if b.Type != pemCSR && b.Type != pemCSRLegacy {
		return nil, refusef(ErrPEMType, what, nil, "block is %q, want %q", b.Type, pemCSR)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, refuse(ErrMalformedCSR, what, nil, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, refuse(ErrCSRSignature, what, nil, err)
	}
	return csr, nil
}

// EncodePrivateKeyPEM encodes an RSA, ECDSA or Ed25519 private key as an
// unencrypted PKCS#8 PRIVATE KEY block (what `openssl genpkey` writes).
// The caller stores it with owner-only permissions.
func EncodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, refuse(ErrMalformedKey, "private key", nil, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8, Bytes: der}), nil
}

// DecodePrivateKeyPEM parses one private key block: PKCS#8 (PRIVATE KEY),
// PKCS#1 (RSA PRIVATE KEY) or SEC 1 (EC PRIVATE KEY), as OpenSSL writes them.
func DecodePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	const what = "private key"
	blocks, err := pemBlocks(data, what)
	if err != nil {
		return nil, err
	}
	// OpenSSL's `ecparam -genkey` writes an "EC PARAMETERS" block first.
	var keys []*pem.Block
	for _, b := range blocks {
		if b.Type != "EC PARAMETERS" {
			keys = append(keys, b)
		}
	}
	if len(keys) != 1 {
		return nil, refusef(ErrPEMCount, what, nil, "found %d key blocks, want exactly 1", len(keys))
	}
	b := keys[0]
	var key any
	switch b.Type {
	case pemPKCS8:
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case pemPKCS1:
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case pemSEC1:
		key, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, refusef(ErrPEMType, what, nil, "block is %q, want %q, %q or %q", b.Type, pemPKCS8, pemPKCS1, pemSEC1)
	}
	if err != nil {
		return nil, refuse(ErrMalformedKey, what, nil, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, refusef(ErrMalformedKey, what, nil, "unsupported key type %T", key)
	}
}
