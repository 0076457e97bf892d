package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-hsm/coffer/internal/durable"
	"github.com/coffer-hsm/coffer/internal/pki"
)

// File is the cluster configuration file that the CLI (`coffer configure
// cli`) and the PKCS#11 module (`coffer configure pkcs11`,
// COFFER_PKCS11_CONFIG) read: where the HSMs are, how to trust them, and the
// client's synchronization and recovery settings (seeds 002 and 003).
type File struct {
	// HSMs are the host:port of the cluster's HSMs (configure's -a).
	HSMs []string `json:"hsms"`
	// HSMCACert is the path of the customer's trust anchor, the CA
	// certificate that signed the cluster certificate (--hsm-ca-cert).
	HSMCACert string `json:"hsm_ca_cert"`
	// ClusterID is the cluster the HSMs must belong to. configure learns it
	// from the first HSM, whose certificate chain must verify under the
	// trust anchor.
	ClusterID string `json:"cluster_id"`
	// CertificateClusterID is the CommonName of the cluster certificate the
	// HSMs' node certificates are issued under, when it is not ClusterID: a
	// cluster restored from a backup of another keeps that cluster's
	// certificate (its lineage) and serves under its own id. configure
	// learns it with ClusterID. Omitted: ClusterID.
	CertificateClusterID string `json:"certificate_cluster_id,omitempty"`

	// ClientCert and ClientKey are the paths of the certificate (PEM, the
	// leaf first, then any intermediates) and private key (PEM) the client
	// presents to the HSMs for client mutual TLS (configure's
	// --client-cert-hsm-tls-file and --client-key-hsm-tls-file): both or
	// neither. A cluster that enforces client mTLS accepts only clients
	// whose certificate chains to one of its registered trust anchors.
	ClientCert string `json:"client_cert_hsm_tls_file,omitempty"`
	ClientKey  string `json:"client_key_hsm_tls_file,omitempty"`

	CreateObjectMinimumNodes int    `json:"create_object_minimum_nodes,omitempty"`
	ReconnectInterval        string `json:"reconnect_interval,omitempty"` // Go duration, default 5s
	ReconnectAttempts        *int   `json:"reconnect_attempts,omitempty"` // -1 forever (default), 0 never
	RequestTimeout           string `json:"request_timeout,omitempty"`    // Go duration, default 10s
	SilenceTimeout           string `json:"silence_timeout,omitempty"`    // Go duration, default 1s
	// MembershipRefresh is how often a running client asks an HSM for the
	// cluster's current HSMs, dialling those that joined and dropping
	// those that left (Go duration, default 30s; "off": never).
	MembershipRefresh string `json:"membership_refresh,omitempty"`
	// Batching "off" sends every request to an HSM as its own RPC; by
	// default ("on") single-part operations share a stream, many to a
	// message (Config.Unbatched).
	Batching string `json:"batching,omitempty"`

	Logging Logging `json:"logging,omitzero"`

	// Clusters are further clusters the client reaches (`coffer configure
	// cli add-cluster`, as CloudHSM's configure-cli add-cluster), each with
	// its own HSMs, trust anchor and client certificate; the settings above
	// (synchronization, recovery, logging) hold for all. The top-level
	// fields are the first cluster, so a file written before there were
	// several reads as it did.
	Clusters []ClusterEntry `json:"clusters,omitempty"`
}

// ClusterEntry is one further cluster of a File.
type ClusterEntry struct {
	ClusterID string `json:"cluster_id"`
	// CertificateClusterID is as File's.
	CertificateClusterID string   `json:"certificate_cluster_id,omitempty"`
	HSMs                 []string `json:"hsms"`
	HSMCACert            string   `json:"hsm_ca_cert"`
	ClientCert           string   `json:"client_cert_hsm_tls_file,omitempty"`
	ClientKey            string   `json:"client_key_hsm_tls_file,omitempty"`
	// CreateObjectMinimumNodes, if set, replaces the file's for this
	// cluster (which may have fewer HSMs than the first).
	CreateObjectMinimumNodes int `json:"create_object_minimum_nodes,omitempty"`
}

// ClusterIDs lists the clusters the file names, the first one first.
func (f *File) ClusterIDs() []string {
	var ids []string
	if f.ClusterID != "" {
		ids = append(ids, f.ClusterID)
	}
	for _, c := range f.Clusters {
		ids = append(ids, c.ClusterID)
	}
	return ids
}

// ErrUnknownCluster means a File names no cluster of the id asked for.
var ErrUnknownCluster = errors.New("no such cluster in the configuration")

// ForCluster returns the configuration of one of the file's clusters as a
// single-cluster File: the cluster's own addresses, trust anchor and client
// certificate, with the file's other settings.
func (f *File) ForCluster(id string) (*File, error) {
	one := *f
	one.Clusters = nil
	if id == f.ClusterID {
		return &one, nil
	}
	for _, c := range f.Clusters {
		if c.ClusterID == id {
			one.ClusterID, one.HSMs, one.HSMCACert, one.ClientCert, one.ClientKey = c.ClusterID, c.HSMs, c.HSMCACert, c.ClientCert, c.ClientKey
			one.CertificateClusterID = c.CertificateClusterID
			if c.CreateObjectMinimumNodes != 0 {
				one.CreateObjectMinimumNodes = c.CreateObjectMinimumNodes
			}
			return &one, nil
		}
	}
	return nil, fmt.Errorf("cluster %q: %w (configured: %s)", id, ErrUnknownCluster, strings.Join(f.ClusterIDs(), ", "))
}

// AddCluster adds a cluster to the file, or replaces the one of the same
// id. On a file that names no cluster yet it becomes the first.
func (f *File) AddCluster(c ClusterEntry) {
	switch {
	case f.ClusterID == "" && len(f.HSMs) == 0, f.ClusterID == c.ClusterID:
		f.ClusterID, f.HSMs, f.HSMCACert, f.ClientCert, f.ClientKey = c.ClusterID, c.HSMs, c.HSMCACert, c.ClientCert, c.ClientKey
		f.CertificateClusterID = c.CertificateClusterID
		return
	}
	for i := range f.Clusters {
		if f.Clusters[i].ClusterID == c.ClusterID {
			f.Clusters[i] = c
			return
		}
	}
	f.Clusters = append(f.Clusters, c)
}

// Logging is where a library user of the client (the PKCS#11 module) logs.
type Logging struct {
	File  string `json:"file,omitempty"`
	Level string `json:"level,omitempty"` // debug, info, warn, error
}

// ReadFile reads a configuration file. Relative paths in it are relative to
// the file's directory.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("client config %s: %w", path, err)
	}
	paths := []*string{&f.HSMCACert, &f.ClientCert, &f.ClientKey, &f.Logging.File}
	for i := range f.Clusters {
		c := &f.Clusters[i]
		paths = append(paths, &c.HSMCACert, &c.ClientCert, &c.ClientKey)
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(path), *p)
		}
	}
	return &f, nil
}

// WriteFile writes f as indented JSON, readable by its owner and group. It
// replaces the file atomically (durable.WriteFile),
// so a client or module reading it meanwhile sees the old file or the new
// one, never part of one.
func (f *File) WriteFile(path string) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := durable.WriteFile(path, append(b, '\n'), 0o640); err != nil {
		return fmt.Errorf("client config %s: %w", path, err)
	}
	return nil
}

// Check reports what is missing or wrong, saying what to fix.
func (f *File) Check() error {
	var errs []error
	if len(f.HSMs) == 0 {
		errs = append(errs, errors.New(`no HSM addresses ("hsms"): run coffer configure with -a ADDR`))
	}
	for _, a := range f.HSMs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("HSM address %q: want host:port", a))
		}
	}
	if f.HSMCACert == "" {
		errs = append(errs, errors.New(`no trust anchor ("hsm_ca_cert"): run coffer configure with --hsm-ca-cert FILE`))
	}
	if f.ClusterID == "" {
		errs = append(errs, errors.New(`no cluster id ("cluster_id"): run coffer configure again`))
	}
	if (f.ClientCert == "") != (f.ClientKey == "") {
		errs = append(errs, errors.New(`a client certificate needs its key and a key its certificate ("client_cert_hsm_tls_file", "client_key_hsm_tls_file"): `+
			`run coffer configure with both --client-cert-hsm-tls-file and --client-key-hsm-tls-file`))
	}
	for name, d := range map[string]string{"reconnect_interval": f.ReconnectInterval, "request_timeout": f.RequestTimeout, "silence_timeout": f.SilenceTimeout} {
		if d != "" {
			if v, err := time.ParseDuration(d); err != nil || v <= 0 {
				errs = append(errs, fmt.Errorf("%s %q: want a positive duration such as 5s", name, d))
			}
		}
	}
	if d := f.MembershipRefresh; d != "" && d != "off" {
		if v, err := time.ParseDuration(d); err != nil || v <= 0 {
			errs = append(errs, fmt.Errorf(`membership_refresh %q: want a positive duration such as 30s, or "off"`, d))
		}
	}
	if b := f.Batching; b != "" && b != "on" && b != "off" {
		errs = append(errs, fmt.Errorf(`batching %q: want "on" or "off"`, b))
	}
	if f.CreateObjectMinimumNodes < 0 {
		errs = append(errs, fmt.Errorf("create_object_minimum_nodes %d is negative", f.CreateObjectMinimumNodes))
	}
	seen := map[string]bool{f.ClusterID: true}
	for i, c := range f.Clusters {
		switch {
		case c.ClusterID == "":
			errs = append(errs, fmt.Errorf("clusters[%d]: no cluster id: run coffer configure cli add-cluster again", i))
			continue
		case seen[c.ClusterID]:
			errs = append(errs, fmt.Errorf("cluster %s is configured twice", c.ClusterID))
		}
		seen[c.ClusterID] = true
		one, _ := f.ForCluster(c.ClusterID)
		if err := one.Check(); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", c.ClusterID, err))
		}
	}
	return errors.Join(errs...)
}

// Config turns the file into a client Config: TLS that verifies each HSM's
// certificate against the trust anchor, for the file's cluster and the
// address dialled, and presents the client certificate if the file names
// one.
func (f *File) Config(logger *slog.Logger) (Config, error) {
	if err := f.Check(); err != nil {
		return Config{}, err
	}
	anchor, err := readAnchor(f.HSMCACert)
	if err != nil {
		return Config{}, err
	}
	var clientCert []tls.Certificate
	if f.ClientCert != "" {
		c, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
		if err != nil {
			return Config{}, fmt.Errorf("client certificate %s with key %s: %w", f.ClientCert, f.ClientKey, err)
		}
		clientCert = []tls.Certificate{c}
	}
	trust := pki.Trust{TrustAnchor: anchor, ClusterID: f.ClusterID, CertificateClusterID: f.CertificateClusterID}
	cfg := Config{
		HSMs: f.HSMs,
		TLS: func(host string) (*tls.Config, error) {
			tc, err := pki.ClusterClientConfig(trust, host)
			if err != nil {
				return nil, err
			}
			tc.Certificates = clientCert
			return tc, nil
		},
		CreateObjectMinimumNodes: f.CreateObjectMinimumNodes,
		ReconnectAttempts:        ReconnectForever,
		Logger:                   logger,
	}
	if f.ReconnectAttempts != nil {
		cfg.ReconnectAttempts = *f.ReconnectAttempts
	}
	if f.ReconnectInterval != "" {
		cfg.ReconnectInterval, _ = time.ParseDuration(f.ReconnectInterval)
	}
	if f.RequestTimeout != "" {
		cfg.RequestTimeout, _ = time.ParseDuration(f.RequestTimeout)
	}
	if f.SilenceTimeout != "" {
		cfg.SilenceTimeout, _ = time.ParseDuration(f.SilenceTimeout)
	}
	cfg.Unbatched = f.Batching == "off"
	switch f.MembershipRefresh {
	case "":
		cfg.MembershipInterval = DefaultMembershipRefresh
	case "off":
	default:
		cfg.MembershipInterval, _ = time.ParseDuration(f.MembershipRefresh)
	}
	return cfg, nil
}

func readAnchor(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trust anchor: %w", err)
	}
	return pki.DecodeCertificatePEM(b, "trust anchor "+path)
}

// ClusterIdentity is who an HSM says its cluster is.
type ClusterIdentity struct {
	// ClusterID is the cluster its node certificate names.
	ClusterID string
	// CertificateClusterID is the CommonName of the cluster certificate it
	// is issued under, when it is not ClusterID (a cluster restored from a
	// backup of that one); empty otherwise.
	CertificateClusterID string
}

// DiscoverCluster connects to the HSM at addr and returns the cluster it
// belongs to, after verifying its certificate chain under the trust anchor
// at anchorPath: the cluster its node certificate names, under a cluster
// certificate that chains to the anchor and whose CommonName is that
// cluster or, for a cluster restored from a backup, the cluster that was
// initialized. configure uses it so a user need only give an address and
// the anchor; the file then pins both.
func DiscoverCluster(ctx context.Context, addr, anchorPath string) (ClusterIdentity, error) {
	anchor, err := readAnchor(anchorPath)
	if err != nil {
		return ClusterIdentity{}, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ClusterIdentity{}, fmt.Errorf("HSM address %q: want host:port", addr)
	}
	var found ClusterIdentity
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{"h2"},
		InsecureSkipVerify: true, // verified in VerifyConnection below, completely
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) < 2 {
				return errors.New("the HSM sent no cluster certificate")
			}
			who, err := pki.CertificateIdentity(cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			id := ClusterIdentity{ClusterID: who.ClusterID}
			if cn := cs.PeerCertificates[1].Subject.CommonName; cn != who.ClusterID {
				id.CertificateClusterID = cn
			}
			trust := pki.Trust{TrustAnchor: anchor, ClusterID: id.ClusterID, CertificateClusterID: id.CertificateClusterID}
			if _, err := trust.VerifyNode(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, host); err != nil {
				return err
			}
			found = id
			return nil
		},
	}
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return ClusterIdentity{}, fmt.Errorf("HSM %s: %w", addr, err)
	}
	conn.Close()
	return found, nil
}
