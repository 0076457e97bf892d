package client

import (
	"crypto/tls"
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
