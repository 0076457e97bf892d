package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wantMode fails t unless the file at path exists with permission mode.
func wantMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
}

// readFile returns the file at path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testSealingKey(t *testing.T) []byte {
	t.Helper()
	sk, err := SealingKeyFile(filepath.Join(t.TempDir(), "sealing.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// TestCustomerCAFiles: the CA is made once, its key 0600 in a new 0700
// directory, and reads back as a CA certificate and its key.
func TestCustomerCAFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := NewCustomerCAFiles(certPath, keyPath, "files CA", testNow.AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	wantMode(t, dir, 0o700)
	wantMode(t, keyPath, 0o600)
	wantMode(t, certPath, 0o644)
	first := readFile(t, certPath)
	if err := NewCustomerCAFiles(certPath, keyPath, "files CA", testNow.AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, certPath), first) {
		t.Fatal("a second call made another CA")
	}
	cert, key, err := LoadCustomerCA(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || cert.Subject.CommonName != "files CA" || !samePublicKey(key.Public(), cert.PublicKey) {
		t.Fatalf("loaded CA %q (CA %v) with another key or name", cert.Subject.CommonName, cert.IsCA)
	}
	if _, _, err := LoadCustomerCA(certPath, filepath.Join(dir, "missing.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadCustomerCA without its key = %v, want ErrNotExist", err)
	}
}

// TestClusterKeyFiles: the cluster key is written sealed beside its CSR,
// opens under its sealing key only, and publishes an HSM certificate that
// matches the CSR; a plaintext key an older Coffer left is sealed in place.
func TestClusterKeyFiles(t *testing.T) {
	sk := testSealingKey(t)
	dir := filepath.Join(t.TempDir(), "cluster")
	key, csr, err := NewClusterKeyFiles(dir, "cluster-files", sk)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, ClusterKeyFile)
	wantMode(t, keyPath, 0o600)
	wantMode(t, filepath.Join(dir, ClusterCSRFile), 0o644)
	if sealed := readFile(t, keyPath); !IsSealedClusterKey(sealed) || bytes.Contains(sealed, []byte("PRIVATE KEY")) {
		t.Fatal("the cluster key file is not sealed")
	}
	got, resealed, err := ReadClusterKey(keyPath, sk)
	if err != nil || resealed {
		t.Fatalf("ReadClusterKey = resealed %v, %v", resealed, err)
	}
	if !samePublicKey(got.Public(), key.Public()) {
		t.Fatal("read another key")
	}

	t.Run("HSM certificate", func(t *testing.T) {
		csrPEM, hsmCert, err := ClusterKeyHsmCertificate(dir, got, "cluster-files", "hsm-a", testNow)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(csrPEM, csr) {
			t.Error("published another CSR than the one written")
		}
		req, err := DecodeCSRPEM(csrPEM)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckHsmCertificate(hsmCert, req); err != nil {
			t.Error(err)
		}
		if hsmCert.Subject.CommonName != "hsm-a" {
			t.Errorf("HSM certificate names %q", hsmCert.Subject.CommonName)
		}
		if _, _, err := ClusterKeyHsmCertificate(dir, got, "cluster-other", "hsm-a", testNow); err == nil || !strings.Contains(err.Error(), `holds the key of cluster "cluster-files"`) {
			t.Errorf("another cluster id: %v", err)
		}
		other, err := NewClusterKey()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ClusterKeyHsmCertificate(dir, other, "cluster-files", "hsm-a", testNow); err == nil || !strings.Contains(err.Error(), "does not match its CSR") {
			t.Errorf("another key: %v", err)
		}
	})
	t.Run("another sealing key", func(t *testing.T) {
		if _, _, err := ReadClusterKey(keyPath, testSealingKey(t)); !errors.Is(err, ErrSealed) {
			t.Fatalf("ReadClusterKey = %v, want ErrSealed", err)
		}
	})
	t.Run("a plaintext key is sealed in place", func(t *testing.T) {
		plainDir := t.TempDir()
		path := filepath.Join(plainDir, ClusterKeyFile)
		plain, err := EncodePrivateKeyPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, plain, 0o600); err != nil {
			t.Fatal(err)
		}
		got, resealed, err := ReadClusterKey(path, sk)
		if err != nil || !resealed || !samePublicKey(got.Public(), key.Public()) {
			t.Fatalf("ReadClusterKey of a plaintext key = resealed %v, %v", resealed, err)
		}
		if !IsSealedClusterKey(readFile(t, path)) {
			t.Fatal("the plaintext key was not sealed in place")
		}
		if _, resealed, err := ReadClusterKey(path, sk); err != nil || resealed {
			t.Fatalf("second read = resealed %v, %v; want a sealed key", resealed, err)
		}
	})
	t.Run("neither sealed nor plaintext", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), ClusterKeyFile)
		if err := os.WriteFile(path, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadClusterKey(path, sk); err == nil || !strings.Contains(err.Error(), "neither a sealed cluster key nor a plaintext one") {
			t.Fatalf("ReadClusterKey of junk = %v", err)
		}
	})
}

// TestSignedClusterAndNodeFiles: the files `coffer hsm init` makes give a
// cluster certificate that chains to the customer CA and node certificates
// that verify under it.
func TestSignedClusterAndNodeFiles(t *testing.T) {
	ca := newTestCA(t, "files CA")
	caPath := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caPath, ca.pem(), 0o644); err != nil {
		t.Fatal(err)
	}
	sk := testSealingKey(t)
	dir := filepath.Join(t.TempDir(), "cluster")
	if err := NewSignedClusterFiles(dir, "cluster-signed", sk, ca.cert, ca.key, testNow.AddDate(2, 0, 0)); err != nil {
		t.Fatal(err)
	}
	wantMode(t, filepath.Join(dir, ClusterCertFile), 0o644)
	cc, err := ReadClusterCertificates(filepath.Join(dir, ClusterCertFile), caPath)
	if err != nil {
		t.Fatal(err)
	}
	if cc.ClusterID != "cluster-signed" {
		t.Fatalf("cluster certificate of %q", cc.ClusterID)
	}
	key, _, err := ReadClusterKey(filepath.Join(dir, ClusterKeyFile), sk)
	if err != nil {
		t.Fatal(err)
	}
	if !samePublicKey(key.Public(), cc.Certificate.PublicKey) {
		t.Fatal("the cluster certificate is not on the cluster key")
	}

	nodeDir := filepath.Join(t.TempDir(), "hsm-1")
	cert, err := IssueNodeCertFiles(nodeDir, key, cc.Certificate, NodeCertRequest{
		HsmID: "hsm-1", IPs: loopback, NotAfter: cc.Certificate.NotAfter,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantMode(t, filepath.Join(nodeDir, NodeKeyFile), 0o600)
	written, err := DecodeCertificatePEM(readFile(t, filepath.Join(nodeDir, NodeCertFile)), "node certificate")
	if err != nil || !written.Equal(cert) {
		t.Fatalf("the node certificate file holds another certificate (%v)", err)
	}
	nodeKey, err := DecodePrivateKeyPEM(readFile(t, filepath.Join(nodeDir, NodeKeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	if !samePublicKey(nodeKey.Public(), cert.PublicKey) {
		t.Fatal("the node key file is not the node certificate's key")
	}
	id, err := cc.Trust(clockAt(testNow)).VerifyNode([]*x509.Certificate{cert}, x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1).String())
	if err != nil {
		t.Fatal(err)
	}
	if id.HsmID != "hsm-1" || id.ClusterID != "cluster-signed" {
		t.Fatalf("node identity %+v", id)
	}
}
