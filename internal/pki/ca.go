package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"time"
)

// customerCAKeyBits follows CloudHSM's guide ("openssl genrsa 2048").
const customerCAKeyBits = 2048

// NewCustomerCA makes what a customer makes before InitializeCluster: an
// RSA-2048 key pair and a self-signed CA certificate for it (subject
// CN=<name>, BasicConstraints CA:TRUE, keyCertSign and cRLSign), valid from
// now until notAfter. For tests and for `coffer up`; production customers
// bring their own CA.
func NewCustomerCA(name string, notAfter time.Time) (*x509.Certificate, crypto.Signer, error) {
	const what = "customer CA"
	if name == "" {
		return nil, nil, refusef(ErrConfig, what, nil, "empty name")
	}
	now := time.Now()
	if !notAfter.After(now) {
		return nil, nil, refusef(ErrConfig, what, nil, "notAfter %s is not in the future", notAfter)
	}
	key, err := rsa.GenerateKey(rand.Reader, customerCAKeyBits)
	if err != nil {
		return nil, nil, refuse(ErrConfig, what, nil, err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	cert, err := createCertificate(what, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// SignCSR signs a CSR the way `openssl x509 -req -CA caCert -CAkey caKey`
// does: the CSR's subject and public key, a random serial, valid from now
// until notAfter, and none of the CSR's extensions. Go always writes
// version 3, so the result is a v3 certificate without BasicConstraints
// (as newer OpenSSL releases make): exactly the kind Go's chain verification will
// not accept as an issuer, which keeps `coffer up` on the same path as a
// real customer. The CSR's signature is checked first; caCert must be a CA
// and caKey its key. Returns the certificate as PEM.
func SignCSR(caCert *x509.Certificate, caKey crypto.Signer, csrPEM []byte, notAfter time.Time) ([]byte, error) {
	const what = "signed certificate"
	if caCert == nil || caKey == nil {
		return nil, refusef(ErrConfig, what, nil, "nil CA certificate or key")
	}
	if err := checkCA(caCert); err != nil {
		return nil, refuse(ErrAnchorNotCA, "signing CA", caCert, err)
	}
	if !samePublicKey(caCert.PublicKey, caKey.Public()) {
		return nil, refusef(ErrWrongKey, "signing CA", caCert, "CA key is not the CA certificate's key")
	}
	csr, err := DecodeCSRPEM(csrPEM)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if !notAfter.After(now) {
		return nil, refusef(ErrConfig, what, nil, "notAfter %s is not in the future", notAfter)
	}
	tmpl := &x509.Certificate{
		RawSubject: csr.RawSubject,
		NotBefore:  now,
		NotAfter:   notAfter,
	}
	cert, err := createCertificate(what, tmpl, caCert, csr.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return EncodeCertificatesPEM(cert), nil
}
