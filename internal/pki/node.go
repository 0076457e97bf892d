package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"time"
)

// clockSkew backdates node certificates issued "now".
const clockSkew = 5 * time.Minute

// NodeCertRequest is what a node certificate certifies.
type NodeCertRequest struct {
	// HsmID is the HSM's id ("hsm-…").
	HsmID string
	// ClusterID is the cluster the HSM serves (its coffer:// URI and OU).
	// Empty: the cluster certificate's CommonName. It differs from that for
	// a cluster restored from a backup of another, which keeps the other's
	// cluster certificate and key.
	ClusterID string
	// PublicKey is the node's own TLS key (NewNodeKey), never the cluster key.
	PublicKey crypto.PublicKey
	// IPs and DNSNames are the addresses clients dial (each HSM listens on
	// its own address, e.g. 127.0.0.11). At least one is required.
	IPs      []net.IP
	DNSNames []string
	// NotBefore (zero: now less 5 minutes, for peers whose clocks lag) and
	// NotAfter bound validity; both are clamped to the cluster
	// certificate's validity.
	NotBefore time.Time
	NotAfter  time.Time
}

// IssueNodeCert issues a node certificate with the cluster key: subject
// CN=<hsm-id>, O=Coffer, OU=<cluster-id> (req.ClusterID, by default the
// cluster certificate's CommonName); issuer the cluster certificate's
// subject; extended key usages serverAuth and clientAuth (client-facing TLS
// and node-to-node mTLS); not a CA; SANs the request's IPs and DNS names
// and the URI coffer://cluster/<cluster-id>/hsm/<hsm-id>.
func IssueNodeCert(clusterKey crypto.Signer, clusterCert *x509.Certificate, req NodeCertRequest) (*x509.Certificate, error) {
	const what = "node certificate"
	if clusterKey == nil || clusterCert == nil || req.PublicKey == nil {
		return nil, refusef(ErrConfig, what, nil, "nil cluster key, cluster certificate or node public key")
	}
	if !samePublicKey(clusterCert.PublicKey, clusterKey.Public()) {
		return nil, refusef(ErrWrongKey, "cluster certificate", clusterCert, "not the cluster key's certificate")
	}
	if samePublicKey(clusterCert.PublicKey, req.PublicKey) {
		return nil, refusef(ErrConfig, what, nil, "the node key must not be the cluster key")
	}
	clusterID := req.ClusterID
	if clusterID == "" {
		clusterID = clusterCert.Subject.CommonName
	}
	u, err := NodeURI(clusterID, req.HsmID)
	if err != nil {
		return nil, err
	}
	if len(req.IPs) == 0 && len(req.DNSNames) == 0 {
		return nil, refusef(ErrConfig, what, nil, "no IP address or DNS name to certify")
	}
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-clockSkew)
	}
	if notBefore.Before(clusterCert.NotBefore) {
		notBefore = clusterCert.NotBefore
	}
	notAfter := req.NotAfter
	if notAfter.After(clusterCert.NotAfter) {
		notAfter = clusterCert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, refusef(ErrConfig, what, nil, "empty validity %s to %s (after clamping to the cluster certificate's)", notBefore, notAfter)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: req.HsmID, Organization: []string{organization}, OrganizationalUnit: []string{clusterID}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IPAddresses:           req.IPs,
		DNSNames:              req.DNSNames,
		URIs:                  []*url.URL{u},
	}
	cert, err := createCertificate(what, tmpl, clusterCert, req.PublicKey, clusterKey)
	if err != nil {
		return nil, err
	}
	if err := checkSignatureBy(cert, clusterCert); err != nil {
		return nil, refuse(ErrNotIssued, what, cert, err)
	}
	return cert, nil
}

// NodeTLSCertificate is a node's TLS credential: its node certificate
// followed by chain (ClusterCertificates.Chain: the cluster certificate and
// intermediates), and its key.
func NodeTLSCertificate(nodeKey crypto.Signer, nodeCert *x509.Certificate, chain []*x509.Certificate) (tls.Certificate, error) {
	if nodeKey == nil || nodeCert == nil {
		return tls.Certificate{}, refusef(ErrConfig, "node TLS certificate", nil, "nil key or certificate")
	}
	if !samePublicKey(nodeCert.PublicKey, nodeKey.Public()) {
		return tls.Certificate{}, refusef(ErrWrongKey, "node certificate", nodeCert, "not the node key's certificate")
	}
	raw := [][]byte{nodeCert.Raw}
	for _, c := range chain {
		raw = append(raw, c.Raw)
	}
	return tls.Certificate{Certificate: raw, PrivateKey: nodeKey, Leaf: nodeCert}, nil
}
