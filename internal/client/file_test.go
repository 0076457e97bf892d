package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/pki"
)

// A node certificate chain made the way `coffer hsm init` makes it.
func clusterPKI(t *testing.T, clusterID string) (anchorPath string, server *tls.Config) {
	t.Helper()
	return clusterPKIAs(t, clusterID, clusterID)
}

// clusterPKIAs is clusterPKI for an HSM of cluster clusterID under a
// cluster certificate for lineage: a cluster restored from a backup of
// lineage when they differ.
func clusterPKIAs(t *testing.T, lineage, clusterID string) (anchorPath string, server *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	notAfter := time.Now().Add(24 * time.Hour)
	ca, caKey, err := pki.NewCustomerCA("test customer CA", notAfter)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewClusterKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewClusterCSR(key, lineage)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := pki.SignCSR(ca, caKey, csr, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	anchorPEM := pki.EncodeCertificatesPEM(ca)
	cc, err := pki.ParseClusterCertificates(signed, anchorPEM)
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, err := pki.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	nodeCert, err := pki.IssueNodeCert(key, cc.Certificate, pki.NodeCertRequest{HsmID: "hsm-1", ClusterID: clusterID, PublicKey: nodeKey.Public(), IPs: []net.IP{net.ParseIP("127.0.0.1")}, NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.NodeTLSCertificate(nodeKey, nodeCert, cc.Chain())
	if err != nil {
		t.Fatal(err)
	}
	server, err = pki.NodeServerConfig(cert, cc.TrustAs(clusterID, time.Now))
	if err != nil {
		t.Fatal(err)
	}
	server.NextProtos = []string{"h2"}
	anchorPath = filepath.Join(dir, "customerCA.crt")
	if err := os.WriteFile(anchorPath, anchorPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return anchorPath, server
}

func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func TestDiscoverClusterID(t *testing.T) {
	anchor, server := clusterPKI(t, "cluster-abc")
	addr := serveTLS(t, server)
	id, err := discoverID(t.Context(), addr, anchor)
	if err != nil || id != "cluster-abc" {
		t.Fatalf("DiscoverCluster = %q, %v", id, err)
	}
	// Another customer's anchor does not vouch for this cluster.
	otherAnchor, _ := clusterPKI(t, "cluster-abc")
	if _, err := discoverID(t.Context(), addr, otherAnchor); err == nil {
		t.Fatal("a cluster under another trust anchor was accepted")
	}
}

// An HSM of cluster-bbb, restored from a backup of cluster-aaa, serves
// under cluster-aaa's certificate: configure learns both ids, and a client
// of the file trusts the HSM only with both.
func TestDiscoverRestoredCluster(t *testing.T) {
	anchor, server := clusterPKIAs(t, "cluster-aaa", "cluster-bbb")
	addr := serveTLS(t, server)
	got, err := DiscoverCluster(t.Context(), addr, anchor)
	if want := (ClusterIdentity{ClusterID: "cluster-bbb", CertificateClusterID: "cluster-aaa"}); err != nil || got != want {
		t.Fatalf("DiscoverCluster = %+v, %v; want %+v", got, err, want)
	}
	if id, err := discoverID(t.Context(), addr, anchor); err != nil || id != "cluster-bbb" {
		t.Fatalf("DiscoverClusterID = %q, %v; want the node certificate's cluster-bbb", id, err)
	}
	otherAnchor, _ := clusterPKIAs(t, "cluster-aaa", "cluster-bbb")
	if _, err := DiscoverCluster(t.Context(), addr, otherAnchor); err == nil {
		t.Fatal("a cluster under another trust anchor was accepted")
	}
	// A cluster not restored: no certificate cluster id.
	plainAnchor, plain := clusterPKI(t, "cluster-ccc")
	if got, err := DiscoverCluster(t.Context(), serveTLS(t, plain), plainAnchor); err != nil || got != (ClusterIdentity{ClusterID: "cluster-ccc"}) {
		t.Fatalf("DiscoverCluster of a cluster not restored = %+v, %v", got, err)
	}

	host, _, _ := net.SplitHostPort(addr)
	dial := func(f *File) error {
		t.Helper()
		cfg, err := f.Config(nil)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := cfg.TLS(host)
		if err != nil {
			return err
		}
		c, err := tls.Dial("tcp", addr, tc)
		if err == nil {
			c.Close()
		}
		return err
	}
	f := &File{HSMs: []string{addr}, HSMCACert: anchor, ClusterID: "cluster-bbb", CertificateClusterID: "cluster-aaa"}
	if err := dial(f); err != nil {
		t.Fatalf("the file's trust refused the clone: %v", err)
	}
	for _, tc := range []struct {
		name      string
		id, certs string
	}{
		{"own id only", "cluster-bbb", ""},
		{"the lineage's id", "cluster-aaa", ""},
		{"another lineage", "cluster-bbb", "cluster-zzz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := *f
			g.ClusterID, g.CertificateClusterID = tc.id, tc.certs
			if err := dial(&g); !errors.Is(err, pki.ErrWrongCluster) {
				t.Fatalf("dial = %v, want ErrWrongCluster", err)
			}
		})
	}
	// The clusters of a file carry it too.
	multi := &File{HSMs: []string{"127.0.0.1:1"}, HSMCACert: anchor, ClusterID: "cluster-ccc"}
	multi.AddCluster(ClusterEntry{ClusterID: "cluster-bbb", CertificateClusterID: "cluster-aaa", HSMs: []string{addr}, HSMCACert: anchor})
	one, err := multi.ForCluster("cluster-bbb")
	if err != nil || one.CertificateClusterID != "cluster-aaa" {
		t.Fatalf("ForCluster = %+v, %v", one, err)
	}
	if err := dial(one); err != nil {
		t.Fatalf("the added cluster's trust refused the clone: %v", err)
	}
}

func TestFileRoundTripAndCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "coffer.json")
	attempts := 3
	f := &File{HSMs: []string{"127.0.0.11:2223"}, HSMCACert: "customerCA.crt", ClusterID: "cluster-abc",
		CreateObjectMinimumNodes: 2, ReconnectInterval: "2s", ReconnectAttempts: &attempts}
	if err := f.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.HSMCACert != filepath.Join(dir, "customerCA.crt") || *got.ReconnectAttempts != 3 || got.CreateObjectMinimumNodes != 2 {
		t.Fatalf("read back %+v", got)
	}
	for _, c := range []struct {
		name string
		edit func(*File)
		want string
	}{
		{"no HSMs", func(f *File) { f.HSMs = nil }, "coffer configure with -a ADDR"},
		{"bad address", func(f *File) { f.HSMs = []string{"nohost"} }, "want host:port"},
		{"no anchor", func(f *File) { f.HSMCACert = "" }, "--hsm-ca-cert FILE"},
		{"bad interval", func(f *File) { f.ReconnectInterval = "soon" }, "reconnect_interval"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := *got
			c.edit(&g)
			if err := g.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v, want it to say %q", err, c.want)
			}
		})
	}
	if err := os.WriteFile(path, []byte(`{"hsms":[],"unknown":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("unknown field accepted: %v", err)
	}
}

// clientCertFiles writes a client certificate issued by a fresh CA, and its
// key, as PEM files in dir.
func clientCertFiles(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	ca, caKey, err := pki.NewCustomerCA("client CA", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "app-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodePrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certPath, pki.EncodeCertificatesPEM(leaf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TestFileClientCertificate: the file's client certificate is read relative
// to the file, needs its key, and is presented to the HSMs.
func TestFileClientCertificate(t *testing.T) {
	anchor, server := clusterPKI(t, "cluster-abc")
	dir := t.TempDir()
	certPath, keyPath := clientCertFiles(t, dir)
	path := filepath.Join(dir, "coffer.json")
	f := &File{HSMs: []string{"127.0.0.1:1"}, HSMCACert: anchor, ClusterID: "cluster-abc",
		ClientCert: "client.crt", ClientKey: "client.key"}
	if err := f.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientCert != certPath || got.ClientKey != keyPath {
		t.Fatalf("read back %q %q, want %q %q", got.ClientCert, got.ClientKey, certPath, keyPath)
	}

	for _, c := range []struct {
		name string
		edit func(*File)
		want string
	}{
		{"certificate without key", func(f *File) { f.ClientKey = "" }, "--client-key-hsm-tls-file"},
		{"key without certificate", func(f *File) { f.ClientCert = "" }, "--client-cert-hsm-tls-file"},
		{"key of another certificate", func(f *File) { f.ClientKey = anchorKey(t, dir) }, "client certificate " + certPath},
		{"missing certificate", func(f *File) { f.ClientCert = filepath.Join(dir, "none.crt") }, "none.crt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := *got
			c.edit(&g)
			if _, err := g.Config(nil); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Config = %v, want it to say %q", err, c.want)
			}
		})
	}

	// The HSM sees the certificate.
	seen := make(chan string, 1)
	srv := server.Clone()
	srv.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			seen <- cs.PeerCertificates[0].Subject.CommonName
		}
		return nil
	}
	addr := serveTLS(t, srv)
	cfg, err := got.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.TLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	conn.Read(make([]byte, 1)) // returns once the server has finished its handshake and hung up
	conn.Close()
	select {
	case cn := <-seen:
		if cn != "app-1" {
			t.Fatalf("HSM saw client certificate %q, want app-1", cn)
		}
	default:
		t.Fatal("the client presented no certificate")
	}
}

// anchorKey writes a key that belongs to no certificate of the test.
func anchorKey(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.EncodePrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "other.key")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// discoverID is the cluster id DiscoverCluster finds.
func discoverID(ctx context.Context, addr, anchorPath string) (string, error) {
	c, err := DiscoverCluster(ctx, addr, anchorPath)
	return c.ClusterID, err
}
