package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-hsm/coffer/internal/node"
	"github.com/coffer-hsm/coffer/internal/pki"
)

// hsmFile is an HSM node's configuration file (hsm-N.json), written by
// `coffer hsm init` and read by `coffer hsm run`. Relative paths are relative
// to the file's directory.
type hsmFile struct {
	DataDir       string `json:"data_dir"`
	Listen        string `json:"listen"`
	MetricsListen string `json:"metrics_listen,omitempty"`
	NodeID        uint32 `json:"node_id"`
	ClusterID     string `json:"cluster_id"`
	// CertificateClusterID is the cluster id the cluster certificate's
	// CommonName names when it is not ClusterID: a cluster restored from a
	// backup of that cluster keeps its certificate. Omitted: ClusterID.
	CertificateClusterID string     `json:"certificate_cluster_id,omitempty"`
	HSMID                string     `json:"hsm_id"`
	Certificate          string     `json:"certificate"`         // PEM: the node certificate
	PrivateKey           string     `json:"private_key"`         // PEM: the node's TLS key
	ClusterCertificate   string     `json:"cluster_certificate"` // PEM: the signed cluster certificate (+ intermediates)
	TrustAnchor          string     `json:"trust_anchor"`        // PEM: the customer's CA certificate
	Peers                []peerFile `json:"peers"`
	MaskingKey           string     `json:"masking_key"` // create | clone | existing | restore
	FIPS                 bool       `json:"fips,omitempty"`
	// BackupKey is the fleet backup key file (0600, `coffer hsm backup-key
	// --create`); without one the node makes no backups.
	BackupKey string `json:"backup_key,omitempty"`
	// RestoreBlob and RestoreBackupID are the backup a "restore" node
	// builds its store from when it has none.
	RestoreBlob     string `json:"restore_blob,omitempty"`
	RestoreBackupID string `json:"restore_backup_id,omitempty"`
	// LoginFailureDelay and LoginMaxFailureDelay (Go durations, e.g. "2s")
	// override the pause a client address keeps after a failed login and
	// its cap (node.ClientLimits); empty: the node's defaults.
	LoginFailureDelay    string `json:"login_failure_delay,omitempty"`
	LoginMaxFailureDelay string `json:"login_max_failure_delay,omitempty"`
	// TestPasswordCost selects the cheap password-hash cost of Coffer's own
	// tests; `coffer hsm run` refuses it outside the test binary
	// (testcost.go).
	TestPasswordCost bool `json:"test_password_cost,omitempty"`
}

// limits is the node's ClientLimits as the file sets them.
func (f *hsmFile) limits() (node.ClientLimits, error) {
	var l node.ClientLimits
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{
		{"login_failure_delay", f.LoginFailureDelay, &l.LoginFailureDelay},
		{"login_max_failure_delay", f.LoginMaxFailureDelay, &l.LoginMaxFailureDelay},
	} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil || v <= 0 {
			return l, fmt.Errorf("%s %q: want a positive duration such as 2s", d.name, d.in)
		}
		*d.out = v
	}
	return l, nil
}

type peerFile struct {
	ID      uint32 `json:"id"`
	HSMID   string `json:"hsm_id"`
	Address string `json:"address"`
}

func readHSMFile(path string) (*hsmFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f hsmFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&f.DataDir, &f.Certificate, &f.PrivateKey, &f.ClusterCertificate, &f.TrustAnchor, &f.BackupKey, &f.RestoreBlob} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return &f, nil
}

// identity is what a node presents and trusts, loaded from its files.
type identity struct {
	cert    tls.Certificate
	cluster *pki.ClusterCertificates
	trust   pki.Trust
}

func loadIdentity(f *hsmFile, now func() time.Time) (*identity, error) {
	read := func(path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	certPEM, err := read(f.Certificate)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(f.PrivateKey)
	if err != nil {
		return nil, err
	}
	clusterPEM, err := read(f.ClusterCertificate)
	if err != nil {
		return nil, err
	}
	anchorPEM, err := read(f.TrustAnchor)
	if err != nil {
		return nil, err
	}
	cc, err := pki.ParseClusterCertificates(clusterPEM, anchorPEM)
	if err != nil {
		return nil, err
	}
	if cc.ClusterID != f.certificateClusterID() {
		return nil, fmt.Errorf("%s is the certificate of cluster %q, not %q", f.ClusterCertificate, cc.ClusterID, f.certificateClusterID())
	}
	nodeCert, err := pki.DecodeCertificatePEM(certPEM, "node certificate")
	if err != nil {
		return nil, err
	}
	who, err := pki.CertificateIdentity(nodeCert)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Certificate, err)
	}
	if who.ClusterID != f.ClusterID {
		return nil, fmt.Errorf("%s is a node certificate of cluster %q, not %q", f.Certificate, who.ClusterID, f.ClusterID)
	}
	key, err := pki.DecodePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.PrivateKey, err)
	}
	cert, err := pki.NodeTLSCertificate(key, nodeCert, cc.Chain())
	if err != nil {
		return nil, err
	}
	return &identity{cert: cert, cluster: cc, trust: cc.TrustAs(f.ClusterID, now)}, nil
}

// certificateClusterID is the CommonName of the node's cluster certificate.
func (f *hsmFile) certificateClusterID() string {
	if f.CertificateClusterID == "" {
		return f.ClusterID
	}
	return f.CertificateClusterID
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
