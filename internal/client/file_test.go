package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
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
	csr, err := pki.NewClusterCSR(key, clusterID)
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
	nodeCert, err := pki.IssueNodeCert(key, cc.Certificate, pki.NodeCertRequest{HsmID: "hsm-1", PublicKey: nodeKey.Public(), IPs: []net.IP{net.ParseIP("127.0.0.1")}, NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.NodeTLSCertificate(nodeKey, nodeCert, cc.Chain())
	if err != nil {
		t.Fatal(err)
	}
	server, err = pki.NodeServerConfig(cert, cc.Trust(time.Now))
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
	id, err := DiscoverClusterID(t.Context(), addr, anchor)
	if err != nil || id != "cluster-abc" {
		t.Fatalf("DiscoverClusterID = %q, %v", id, err)
	}
	// Another customer's anchor does not vouch for this cluster.
	otherAnchor, _ := clusterPKI(t, "cluster-abc")
	if _, err := DiscoverClusterID(t.Context(), addr, otherAnchor); err == nil {
		t.Fatal("a cluster under another trust anchor was accepted")
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
