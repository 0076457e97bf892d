package pki

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// Trust is how a peer's node certificate is verified: against the
// customer's trust anchor, for one cluster.
type Trust struct {
	// TrustAnchor is the customer's CA certificate, the only root. Required.
	TrustAnchor *x509.Certificate
	// ClusterID is the cluster the peer must belong to: the one its node
	// certificate's coffer:// URI names. Required.
	ClusterID string
	// CertificateClusterID is the CommonName the cluster certificate must
	// have: the cluster that was initialized, the cluster's lineage. Empty:
	// ClusterID. It differs only for a cluster restored from a backup of
	// another, which keeps that cluster's certificate (and key) and serves
	// under its own id.
	CertificateClusterID string
	// ClusterCert, if set, pins the cluster certificate: the peer's node
	// certificate must be issued by it, and whatever cluster certificate the
	// peer sends is ignored. Nodes set it (ClusterCertificates.Trust);
	// clients that know only the anchor leave it nil and use the one the
	// server sends after its node certificate.
	ClusterCert *x509.Certificate
	// Intermediates between ClusterCert and TrustAnchor; only with ClusterCert.
	Intermediates []*x509.Certificate
	// Now is the clock (nil: time.Now). The TLS configurations built from a
	// Trust use it as tls.Config.Time too.
	Now func() time.Time
}

// Validate reports a Trust that cannot verify anything.
func (t Trust) Validate() error {
	const what = "trust policy"
	if t.TrustAnchor == nil {
		return refusef(ErrConfig, what, nil, "no trust anchor")
	}
	if err := checkCA(t.TrustAnchor); err != nil {
		return refuse(ErrAnchorNotCA, "", t.TrustAnchor, err)
	}
	if err := checkID("cluster", t.ClusterID); err != nil {
		return err
	}
	if t.CertificateClusterID != "" {
		if err := checkID("cluster certificate's cluster", t.CertificateClusterID); err != nil {
			return err
		}
	}
	if t.ClusterCert == nil && len(t.Intermediates) > 0 {
		return refusef(ErrConfig, what, nil, "intermediates given without a pinned cluster certificate")
	}
	if t.ClusterCert != nil && t.ClusterCert.Subject.CommonName != t.certificateClusterID() {
		return refusef(ErrSubjectMismatch, "pinned cluster certificate", t.ClusterCert, "want CommonName %q", t.certificateClusterID())
	}
	return nil
}

// certificateClusterID is the CommonName the cluster certificate must have.
func (t Trust) certificateClusterID() string {
	if t.CertificateClusterID == "" {
		return t.ClusterID
	}
	return t.CertificateClusterID
}

func (t Trust) now() time.Time {
	if t.Now == nil {
		return time.Now()
	}
	return t.Now()
}

// VerifyNode verifies a peer's certificate chain as TLS delivers it (node
// certificate first) and returns who the peer is. usage is
// x509.ExtKeyUsageServerAuth when verifying a server, ClientAuth when
// verifying a client. host, if not empty, is the IP address or DNS name
// dialled, which the node certificate must carry as a SAN.
//
// The node certificate must name t.ClusterID in its coffer:// URI
// (ErrWrongCluster), be valid now (ErrExpired), have usage
// (ErrExtKeyUsage), not be a CA (ErrNodeIsCA), and be signed with a
// SHA-256-or-better algorithm (ErrWeakSignature) by the cluster certificate
// (ErrNotIssued). The cluster certificate must name t.CertificateClusterID,
// or t.ClusterID when that is empty (ErrWrongCluster), and chain to the trust anchor now (ErrNotChained,
// ErrExpired). See the package comment for why this is not x509.Verify.
func (t Trust) VerifyNode(chain []*x509.Certificate, usage x509.ExtKeyUsage, host string) (NodeIdentity, error) {
	if err := t.Validate(); err != nil {
		return NodeIdentity{}, err
	}
	if len(chain) == 0 {
		return NodeIdentity{}, refuse(ErrNoPeerCertificate, "", nil, nil)
	}
	const (
		whatNode    = "peer node certificate"
		whatCluster = "peer cluster certificate"
	)
	leaf := chain[0]
	id, err := nodeIdentity(leaf, whatNode)
	if err != nil {
		return NodeIdentity{}, err
	}
	if id.ClusterID != t.ClusterID {
		return NodeIdentity{}, refusef(ErrWrongCluster, whatNode, leaf, "it names cluster %q, want %q", id.ClusterID, t.ClusterID)
	}
	cluster, intermediates := t.ClusterCert, t.Intermediates
	if cluster == nil {
		if len(chain) < 2 {
			return NodeIdentity{}, refuse(ErrNoClusterCertificate, "", leaf, nil)
		}
		cluster, intermediates = chain[1], chain[2:]
		if want := t.certificateClusterID(); cluster.Subject.CommonName != want {
			return NodeIdentity{}, refusef(ErrWrongCluster, whatCluster, cluster, "CommonName %q, want %q", cluster.Subject.CommonName, want)
		}
	}
	now := t.now()
	if err := checkNodeCert(whatNode, leaf, cluster, usage, now); err != nil {
		return NodeIdentity{}, err
	}
	if err := verifyClusterChain(whatCluster, cluster, intermediates, t.TrustAnchor, now); err != nil {
		return NodeIdentity{}, err
	}
	if host != "" {
		if err := leaf.VerifyHostname(host); err != nil {
			return NodeIdentity{}, refuse(ErrHostname, whatNode, leaf, err)
		}
	}
	return id, nil
}

// VerifyNodeAny is VerifyNode under the first of trusts that accepts chain:
// a peer that may be of one of several clusters or lineages (a replication
// link accepts a clone under its own cluster certificate or under this
// node's). With none accepting, the error is the first trust's. No trusts
// is ErrConfig.
func VerifyNodeAny(trusts []Trust, chain []*x509.Certificate, usage x509.ExtKeyUsage, host string) (NodeIdentity, error) {
	if len(trusts) == 0 {
		return NodeIdentity{}, refusef(ErrConfig, "trust policy", nil, "no trust policy")
	}
	var first error
	for _, t := range trusts {
		id, err := t.VerifyNode(chain, usage, host)
		if err == nil {
			return id, nil
		}
		if first == nil {
			first = err
		}
	}
	return NodeIdentity{}, first
}

// checkNodeCert checks leaf as a node certificate issued by cluster.
func checkNodeCert(what string, leaf, cluster *x509.Certificate, usage x509.ExtKeyUsage, now time.Time) error {
	if len(leaf.UnhandledCriticalExtensions) > 0 {
		return refusef(ErrCriticalExtension, what, leaf, "%v", leaf.UnhandledCriticalExtensions)
	}
	if !bytes.Equal(leaf.RawIssuer, cluster.RawSubject) {
		return refusef(ErrNotIssued, what, leaf, "issuer %q is not the cluster certificate's subject %q", leaf.Issuer, cluster.Subject)
	}
	if !allowedSignature(leaf.SignatureAlgorithm) {
		return refusef(ErrWeakSignature, what, leaf, "%v", leaf.SignatureAlgorithm)
	}
	if err := checkSignatureBy(leaf, cluster); err != nil {
		return refuse(ErrNotIssued, what, leaf, err)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return refusef(ErrExpired, what, leaf, "valid %s to %s, now is %s",
			leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return refuse(ErrNodeIsCA, what, leaf, nil)
	}
	if !slices.Contains(leaf.ExtKeyUsage, usage) {
		return refusef(ErrExtKeyUsage, what, leaf, "extended key usage %v lacks %v", leaf.ExtKeyUsage, usage)
	}
	return nil
}

// allowedSignature: SHA-256 or better, RSA PKCS#1 v1.5, RSA-PSS, ECDSA or
// Ed25519. SHA-1 and MD5 are refused.
func allowedSignature(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512,
		x509.PureEd25519:
		return true
	}
	return false
}

// checkSignatureBy checks child's signature with parent's public key,
// whatever parent's CA flag (see the package comment).
func checkSignatureBy(child, parent *x509.Certificate) error {
	if !allowedSignature(child.SignatureAlgorithm) {
		return fmt.Errorf("signature algorithm %v is not allowed", child.SignatureAlgorithm)
	}
	return parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
}
