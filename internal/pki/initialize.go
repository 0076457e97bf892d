package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"time"
)

// ClusterCertificates are the verified results of InitializeCluster.
type ClusterCertificates struct {
	// ClusterID is the cluster certificate's subject CommonName.
	ClusterID string
	// Certificate is the signed cluster certificate (for the cluster key).
	Certificate *x509.Certificate
	// Intermediates are the further certificates of the signed-certificate
	// PEM, between Certificate and TrustAnchor, in the order given.
	Intermediates []*x509.Certificate
	// TrustAnchor is the customer's CA certificate.
	TrustAnchor *x509.Certificate
}

// Chain is what a node sends after its node certificate: the cluster
// certificate then the intermediates, so that a client holding only the
// trust anchor can verify the node.
func (c *ClusterCertificates) Chain() []*x509.Certificate {
	return append([]*x509.Certificate{c.Certificate}, c.Intermediates...)
}

// Trust is the verification policy of a node of this cluster: the anchor,
// the cluster id, and the cluster certificate pinned. now may be nil
// (time.Now).
func (c *ClusterCertificates) Trust(now func() time.Time) Trust {
	return Trust{
		TrustAnchor:   c.TrustAnchor,
		ClusterID:     c.ClusterID,
		ClusterCert:   c.Certificate,
		Intermediates: c.Intermediates,
		Now:           now,
	}
}

// TrustAs is Trust for a node serving cluster clusterID under this
// cluster certificate: a cluster restored from a backup of the certificate's
// cluster (CertificateClusterID is then c.ClusterID). clusterID equal to
// c.ClusterID, or empty, is Trust.
func (c *ClusterCertificates) TrustAs(clusterID string, now func() time.Time) Trust {
	t := c.Trust(now)
	if clusterID != "" && clusterID != c.ClusterID {
		t.ClusterID, t.CertificateClusterID = clusterID, c.ClusterID
	}
	return t
}

// VerifyClusterCertificate is InitializeCluster's check of what the
// customer gives back. It refuses, each with its own reason:
//   - a CSR, signed certificate or trust anchor that is not valid PEM X.509
//     (ErrNoPEM, ErrPEMType, ErrPEMCount, ErrMalformedCertificate, ...);
//   - a trust anchor that is not exactly one certificate (ErrPEMCount) or
//     not a CA (ErrAnchorNotCA);
//   - a certificate whose public key is not the CSR's (ErrKeyMismatch);
//   - a certificate whose subject CommonName is not the CSR's, i.e. the
//     cluster id (ErrSubjectMismatch);
//   - a certificate that does not chain to the trust anchor through the
//     further certificates of signedCertPEM (ErrNotChained), or whose chain
//     is expired or not yet valid at now (ErrExpired).
//
// The first certificate of signedCertPEM is the cluster certificate; any
// further ones are intermediates. The anchor is the only root.
func VerifyClusterCertificate(csrPEM, signedCertPEM, trustAnchorPEM []byte, now time.Time) (*ClusterCertificates, error) {
	csr, err := DecodeCSRPEM(csrPEM)
	if err != nil {
		return nil, err
	}
	cc, err := ParseClusterCertificates(signedCertPEM, trustAnchorPEM)
	if err != nil {
		return nil, err
	}
	if !samePublicKey(cc.Certificate.PublicKey, csr.PublicKey) {
		return nil, refuse(ErrKeyMismatch, "cluster certificate", cc.Certificate, nil)
	}
	if cc.ClusterID != csr.Subject.CommonName {
		return nil, refusef(ErrSubjectMismatch, "cluster certificate", cc.Certificate,
			"CommonName %q, want the CSR's %q (the cluster id)", cc.ClusterID, csr.Subject.CommonName)
	}
	if err := verifyClusterChain("cluster certificate", cc.Certificate, cc.Intermediates, cc.TrustAnchor, now); err != nil {
		return nil, err
	}
	return cc, nil
}

// ParseClusterCertificates parses a stored cluster certificate (with any
// intermediates) and trust anchor, and checks what does not depend on time
// or on the CSR: the anchor is one CA certificate and the cluster
// certificate's CommonName is a cluster id. A node reloading its state uses
// it; InitializeCluster uses VerifyClusterCertificate.
func ParseClusterCertificates(signedCertPEM, trustAnchorPEM []byte) (*ClusterCertificates, error) {
	anchor, err := DecodeCertificatePEM(trustAnchorPEM, "trust anchor")
	if err != nil {
		return nil, err
	}
	if err := checkCA(anchor); err != nil {
		return nil, refuse(ErrAnchorNotCA, "", anchor, err)
	}
	certs, err := DecodeCertificatesPEM(signedCertPEM, "cluster certificate")
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if err := checkID("cluster", cert.Subject.CommonName); err != nil {
		return nil, refuse(ErrSubjectMismatch, "cluster certificate", cert, err)
	}
	return &ClusterCertificates{
		ClusterID:     cert.Subject.CommonName,
		Certificate:   cert,
		Intermediates: certs[1:],
		TrustAnchor:   anchor,
	}, nil
}

// checkCA says whether c may act as a trust anchor, as OpenSSL's
// X509_check_ca and Go's CheckSignatureFrom see it: BasicConstraints with
// CA=true, or, lacking BasicConstraints, a self-signed version 1
// certificate (v1 has no extensions to say so); and if KeyUsage is present,
// it includes keyCertSign.
func checkCA(c *x509.Certificate) error {
	switch {
	case c.BasicConstraintsValid && !c.IsCA:
		return errors.New("basic constraints say CA:FALSE")
	case !c.BasicConstraintsValid && c.Version >= 3:
		return errors.New("a version 3 certificate without basic constraints")
	case !c.BasicConstraintsValid && !selfSigned(c):
		return errors.New("a version 1 certificate that is not self-signed")
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return errors.New("key usage lacks keyCertSign")
	}
	return nil
}

// selfSigned: issuer is subject and the signature verifies with the
// certificate's own key (any algorithm Go verifies, SHA-1 included: an old
// v1 root's self-signature is not what its trust rests on).
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// verifyClusterChain checks that cluster, as a leaf, chains to anchor (the
// only root) through intermediates at now. The customer's intermediates
// must be CAs; the cluster certificate need not be (see the package
// comment).
func verifyClusterChain(what string, cluster *x509.Certificate, intermediates []*x509.Certificate, anchor *x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	_, err := cluster.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err == nil {
		return nil
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
		return refuse(ErrExpired, what, cluster, err)
	}
	return refuse(ErrNotChained, what, cluster, err)
}
