package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/pki"
)

// notPlaintextKey fails t if the file at path is a PEM private key.
func notPlaintextKey(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.DecodePrivateKeyPEM(b); err == nil || bytes.Contains(b, []byte("PRIVATE KEY")) {
		t.Fatalf("%s is a plaintext PEM private key", path)
	}
	return b
}

// TestHSMInitSealsClusterKey: `coffer hsm init` keeps the cluster key
// sealed under its sealing key, never as a PEM private key; a plaintext key
// an older version left is sealed in place and still issues certificates.
func TestHSMInitSealsClusterKey(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "cluster")
	var stderr bytes.Buffer
	if err := run(ctx, []string{"hsm", "init", "--dir", dir, "--node", "1=127.0.0.11:2223"}, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatalf("hsm init: %v\n%s", err, stderr.String())
	}
	keyPath := filepath.Join(dir, "cluster", "cluster.key")
	sealed := notPlaintextKey(t, keyPath)
	sk, err := pki.SealingKeyFile(filepath.Join(dir, "sealing.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.OpenClusterKey(sk, sealed)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "cluster", "cluster.crt"))
	if err != nil {
		t.Fatal(err)
	}
	clusterCert, err := pki.DecodeCertificatePEM(certPEM, "cluster certificate")
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(clusterCert.PublicKey) {
		t.Fatal("the sealed key is not the cluster certificate's")
	}

	t.Run("a plaintext key is sealed in place", func(t *testing.T) {
		plain, err := pki.EncodePrivateKeyPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, plain, 0o600); err != nil {
			t.Fatal(err)
		}
		stderr.Reset()
		if err := run(ctx, []string{"hsm", "init", "--dir", dir, "--node", "1=127.0.0.11:2223", "--node", "2=127.0.0.12:2223"}, &bytes.Buffer{}, &stderr); err != nil {
			t.Fatalf("hsm init: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "sealed it in place") {
			t.Errorf("stderr %q does not say the key was sealed", stderr.String())
		}
		notPlaintextKey(t, keyPath)
		nodePEM, err := os.ReadFile(filepath.Join(dir, "hsm-2", "node.crt"))
		if err != nil {
			t.Fatal(err)
		}
		nodeCert, err := pki.DecodeCertificatePEM(nodePEM, "node certificate")
		if err != nil {
			t.Fatal(err)
		}
		if err := nodeCert.CheckSignatureFrom(&x509.Certificate{PublicKey: clusterCert.PublicKey, PublicKeyAlgorithm: clusterCert.PublicKeyAlgorithm, BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}); err != nil {
			t.Errorf("node 2's certificate is not signed by the cluster key: %v", err)
		}
	})
	t.Run("another sealing key", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.key")
		err := run(ctx, []string{"hsm", "init", "--dir", dir, "--sealing-key", other, "--node", "3=127.0.0.13:2223"}, &bytes.Buffer{}, &bytes.Buffer{})
		if !errors.Is(err, pki.ErrSealed) {
			t.Fatalf("hsm init with another sealing key: %v, want ErrSealed", err)
		}
	})
}

// TestHSMClusterKeySealed: the control plane's tools (`coffer hsm
// cluster-key`, `issue-cert`) take the sealing key on stdin and keep the
// cluster key sealed; without the right sealing key nothing is issued.
func TestHSMClusterKeySealed(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	sk, err := pki.SealingKeyFile(filepath.Join(t.TempDir(), "sealing.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	stdin := func(k []byte) *bytes.Reader { return bytes.NewReader(pki.EncodeSealingKey(k)) }
	var out, stderr bytes.Buffer
	args := []string{"cluster-key", "--dir", dir, "--cluster-id", "cluster-sealed", "--hsm-id", "hsm-a", "--sealing-key", "-"}
	if err := runHSM(ctx, args, stdin(sk), &out, &stderr); err != nil {
		t.Fatalf("hsm cluster-key: %v\n%s", err, stderr.String())
	}
	var res map[string]string
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res["cluster_csr"] == "" {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	notPlaintextKey(t, filepath.Join(dir, "cluster.key"))
	// Again with the same key: the same CSR.
	out.Reset()
	if err := runHSM(ctx, args, stdin(sk), &out, &stderr); err != nil {
		t.Fatalf("hsm cluster-key again: %v", err)
	}
	var again map[string]string
	if err := json.Unmarshal(out.Bytes(), &again); err != nil || again["cluster_csr"] != res["cluster_csr"] {
		t.Fatalf("second CSR differs: %q", out.String())
	}
	wrong := make([]byte, pki.SealingKeySize)
	if err := runHSM(ctx, args, stdin(wrong), &out, &stderr); !errors.Is(err, pki.ErrSealed) {
		t.Fatalf("hsm cluster-key with a wrong sealing key: %v, want ErrSealed", err)
	}
	if err := runHSM(ctx, []string{"seal-cluster-key", "--dir", dir, "--sealing-key", "-"}, stdin(sk), &out, &stderr); err != nil {
		t.Fatalf("hsm seal-cluster-key on a sealed key: %v", err)
	}
}
