package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"time"
)

// organization is the O= of every subject Coffer makes.
const organization = "Coffer"

// NewClusterKey generates the cluster key pair: ECDSA P-256 (see the
// package comment for why not RSA-2048). It is made once, inside the first
// HSM, and never leaves the HSMs of the cluster.
func NewClusterKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// NewNodeKey generates a node's TLS key pair (ECDSA P-256), the key its
// node certificate certifies. Each HSM has its own.
func NewNodeKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// clusterSubject is the subject of the ClusterCsr. The CommonName is the
// cluster id: the signed cluster certificate must keep it (see
// VerifyClusterCertificate).
func clusterSubject(clusterID string) pkix.Name {
	return pkix.Name{CommonName: clusterID, Organization: []string{organization}}
}

// NewClusterCSR makes the ClusterCsr: a PEM PKCS#10 request for the cluster
// key, with subject CN=<cluster-id>, O=Coffer. The CSR is checked against the
// key after signing (a pairwise consistency test of the key pair).
func NewClusterCSR(clusterKey crypto.Signer, clusterID string) ([]byte, error) {
	if clusterKey == nil {
		return nil, refusef(ErrConfig, "cluster CSR", nil, "nil cluster key")
	}
	if err := checkID("cluster", clusterID); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: clusterSubject(clusterID)}, clusterKey)
	if err != nil {
		return nil, refuse(ErrConfig, "cluster CSR", nil, err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, refuse(ErrMalformedCSR, "cluster CSR", nil, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, refuse(ErrCSRSignature, "cluster CSR", nil, err)
	}
	if !samePublicKey(csr.PublicKey, clusterKey.Public()) {
		return nil, refusef(ErrWrongKey, "cluster CSR", nil, "CSR key differs from the cluster key")
	}
	return EncodeCSRPEM(csr), nil
}

// NewHsmCertificate makes the HSM certificate of DescribeClusters: a
// self-signed, non-CA certificate on the cluster public key, issued by the
// HSM that generated it, with subject CN=<hsm-id>, O=Coffer, OU=<cluster-id>
// and the URI SAN coffer://cluster/<cluster-id>/hsm/<hsm-id>. See the package
// comment for what it does and does not prove.
func NewHsmCertificate(clusterKey crypto.Signer, clusterID, hsmID string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	const what = "HSM certificate"
	if clusterKey == nil {
		return nil, refusef(ErrConfig, what, nil, "nil cluster key")
	}
	u, err := NodeURI(clusterID, hsmID)
	if err != nil {
		return nil, err
	}
	if !notAfter.After(notBefore) {
		return nil, refusef(ErrConfig, what, nil, "notAfter %s is not after notBefore %s", notAfter, notBefore)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: hsmID, Organization: []string{organization}, OrganizationalUnit: []string{clusterID}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}
	return createCertificate(what, tmpl, tmpl, clusterKey.Public(), clusterKey)
}

// CheckHsmCertificate checks that hsmCert is self-signed and certifies the
// CSR's key: the CloudHSM check "the HSM certificate's public key is the
// cluster CSR's".
func CheckHsmCertificate(hsmCert *x509.Certificate, csr *x509.CertificateRequest) error {
	const what = "HSM certificate"
	if hsmCert == nil || csr == nil {
		return refusef(ErrConfig, what, nil, "nil certificate or CSR")
	}
	if err := checkSignatureBy(hsmCert, hsmCert); err != nil {
		return refuse(ErrNotIssued, what, hsmCert, err)
	}
	if !samePublicKey(hsmCert.PublicKey, csr.PublicKey) {
		return refuse(ErrKeyMismatch, what, hsmCert, nil)
	}
	return nil
}

// createCertificate signs tmpl under parent with key and parses the result.
func createCertificate(what string, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, refuse(ErrConfig, what, nil, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, refuse(ErrMalformedCertificate, what, nil, err)
	}
	return cert, nil
}

// samePublicKey compares two public keys of any standard type.
func samePublicKey(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && b != nil && ak.Equal(b)
}
