package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-hsm/coffer/internal/durable"
)

// The key and certificate files of a cluster on disk: the customer CA of
// `coffer hsm init` and `coffer up`, a cluster directory (the cluster key,
// sealed, its CSR and, where the customer's CA signed it here, the cluster
// certificate), and an HSM's TLS key and node certificate. Every file is
// written whole (durable.WriteFileAll): keys 0600, certificates and CSRs
// 0644, new directories 0700. Of two files that belong together the one
// whose presence says "done" is written last.

// The files of a cluster directory and of an HSM's directory.
const (
	ClusterKeyFile  = "cluster.key" // the cluster key, sealed (SealClusterKey)
	ClusterCSRFile  = "cluster.csr" // its CSR (PEM)
	ClusterCertFile = "cluster.crt" // the signed cluster certificate (PEM)
	NodeKeyFile     = "node.key.pem"
	NodeCertFile    = "node.crt"
)

// NewCustomerCAFiles makes a customer CA (NewCustomerCA) unless certPath
// exists already, and writes its key to keyPath, then its certificate to
// certPath.
func NewCustomerCAFiles(certPath, keyPath, name string, notAfter time.Time) error {
	if _, err := os.Stat(certPath); err == nil {
		return nil
	}
	cert, key, err := NewCustomerCA(name, notAfter)
	if err != nil {
		return err
	}
	keyPEM, err := EncodePrivateKeyPEM(key)
	if err != nil {
		return err
	}
	if err := durable.WriteFileAll(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return durable.WriteFileAll(certPath, EncodeCertificatesPEM(cert), 0o644)
}

// LoadCustomerCA reads the customer CA certificate and key at certPath and
// keyPath (PEM).
func LoadCustomerCA(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cert, err := DecodeCertificatePEM(certPEM, "customer CA certificate")
	if err != nil {
		return nil, nil, err
	}
	key, err := DecodePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// WriteClusterKeyFiles writes a cluster key's CSR (csrPEM) into dir, then
// the key sealed under sealingKey: a key without its CSR is remade, never
// the reverse.
func WriteClusterKeyFiles(dir string, sealingKey []byte, key crypto.Signer, csrPEM []byte) error {
	if err := durable.WriteFileAll(filepath.Join(dir, ClusterCSRFile), csrPEM, 0o644); err != nil {
		return err
	}
	return WriteClusterKey(filepath.Join(dir, ClusterKeyFile), sealingKey, key)
}

// NewClusterKeyFiles makes a cluster key and its CSR for clusterID
// (NewClusterKey, NewClusterCSR) and writes them into dir
// (WriteClusterKeyFiles). It returns the key and the CSR (PEM).
func NewClusterKeyFiles(dir, clusterID string, sealingKey []byte) (crypto.Signer, []byte, error) {
	key, err := NewClusterKey()
	if err != nil {
		return nil, nil, err
	}
	csr, err := NewClusterCSR(key, clusterID)
	if err != nil {
		return nil, nil, err
	}
	if err := WriteClusterKeyFiles(dir, sealingKey, key, csr); err != nil {
		return nil, nil, err
	}
	return key, csr, nil
}

// NewSignedClusterFiles plays the customer's part for a cluster initialized
// without a control plane (`coffer hsm init`): it makes the cluster key and
// CSR in dir (NewClusterKeyFiles), signs the CSR with the customer CA
// (SignCSR) and writes the cluster certificate (ClusterCertFile) last.
func NewSignedClusterFiles(dir, clusterID string, sealingKey []byte, caCert *x509.Certificate, caKey crypto.Signer, notAfter time.Time) error {
	_, csr, err := NewClusterKeyFiles(dir, clusterID, sealingKey)
	if err != nil {
		return err
	}
	signed, err := SignCSR(caCert, caKey, csr, notAfter)
	if err != nil {
		return err
	}
	return durable.WriteFileAll(filepath.Join(dir, ClusterCertFile), signed, 0o644)
}

// ReadClusterCertificates reads the signed cluster certificate (with its
// intermediates) and the trust anchor and parses them
// (ParseClusterCertificates).
func ReadClusterCertificates(clusterCertPath, trustAnchorPath string) (*ClusterCertificates, error) {
	clusterPEM, err := os.ReadFile(clusterCertPath)
	if err != nil {
		return nil, err
	}
	anchorPEM, err := os.ReadFile(trustAnchorPath)
	if err != nil {
		return nil, err
	}
	return ParseClusterCertificates(clusterPEM, anchorPEM)
}

// WriteClusterKey writes key sealed under sealingKey (SealClusterKey) to
// path (0600).
func WriteClusterKey(path string, sealingKey []byte, key crypto.Signer) error {
	sealed, err := SealClusterKey(sealingKey, key)
	if err != nil {
		return err
	}
	return durable.WriteFileAll(path, sealed, 0o600)
}

// ReadClusterKey opens the sealed cluster key at path. A plaintext PEM key
// left by an older Coffer is sealed in place first, and resealed is true,
// so it is never read from a plaintext file twice; copies of the old file
// (backups) still hold it.
func ReadClusterKey(path string, sealingKey []byte) (key crypto.Signer, resealed bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("the cluster key: %w", err)
	}
	if !IsSealedClusterKey(b) {
		key, err := DecodePrivateKeyPEM(b)
		clear(b)
		if err != nil {
			return nil, false, fmt.Errorf("%s: neither a sealed cluster key nor a plaintext one: %w", path, err)
		}
		if err := WriteClusterKey(path, sealingKey, key); err != nil {
			return nil, false, fmt.Errorf("%s: seal the plaintext cluster key: %w", path, err)
		}
		return key, true, nil
	}
	key, err = OpenClusterKey(sealingKey, b)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	return key, false, nil
}

// ClusterKeyHsmCertificate is what the HSM that made the cluster key in
// dir publishes (DescribeClusters' ClusterCsr and HsmCertificate): it reads
// dir's CSR, checks that it names clusterID and is key's, and makes the HSM
// certificate naming hsmID (NewHsmCertificate), valid from five minutes
// before now for ten years. It returns the CSR (PEM) and the certificate.
func ClusterKeyHsmCertificate(dir string, key crypto.Signer, clusterID, hsmID string, now time.Time) ([]byte, *x509.Certificate, error) {
	csrPath := filepath.Join(dir, ClusterCSRFile)
	csrPEM, err := os.ReadFile(csrPath)
	if err != nil {
		return nil, nil, err
	}
	csr, err := DecodeCSRPEM(csrPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", csrPath, err)
	}
	if csr.Subject.CommonName != clusterID {
		return nil, nil, fmt.Errorf("%s holds the key of cluster %q, not %q", dir, csr.Subject.CommonName, clusterID)
	}
	hsmCert, err := NewHsmCertificate(key, clusterID, hsmID, now.Add(-5*time.Minute), now.AddDate(10, 0, 0))
	if err != nil {
		return nil, nil, err
	}
	if err := CheckHsmCertificate(hsmCert, csr); err != nil {
		return nil, nil, fmt.Errorf("%s: the cluster key does not match its CSR: %w", dir, err)
	}
	return csrPEM, hsmCert, nil
}

// IssueNodeCertFiles makes an HSM's TLS key (NewNodeKey) and issues its
// node certificate with the cluster key (IssueNodeCert; req.PublicKey is
// the new key's), and writes the key (NodeKeyFile), then the certificate
// (NodeCertFile), into dir.
func IssueNodeCertFiles(dir string, clusterKey crypto.Signer, clusterCert *x509.Certificate, req NodeCertRequest) (*x509.Certificate, error) {
	nodeKey, err := NewNodeKey()
	if err != nil {
		return nil, err
	}
	req.PublicKey = nodeKey.Public()
	cert, err := IssueNodeCert(clusterKey, clusterCert, req)
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodePrivateKeyPEM(nodeKey)
	if err != nil {
		return nil, err
	}
	if err := durable.WriteFileAll(filepath.Join(dir, NodeKeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := durable.WriteFileAll(filepath.Join(dir, NodeCertFile), EncodeCertificatesPEM(cert), 0o644); err != nil {
		return nil, err
	}
	return cert, nil
}
