package main

import (
	"crypto"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-hsm/coffer/internal/durable"

	"github.com/coffer-hsm/coffer/internal/pki"
)

// The HSM side of cluster initialization, run by the control plane's
// provisioner as child processes (internal/controlplane.Processes). The
// cluster key lives only in the cluster's HSM directory (0600), which the
// control plane never reads: it sees the CSR and certificates these
// commands print or write. The key is sealed there (pki.SealClusterKey)
// under the sealing key the control plane keeps in its own directory and
// passes on stdin (--sealing-key -): neither directory alone gives the key.

// runHSMClusterKey makes the cluster key once per cluster directory, and
// prints the CSR and an HSM certificate naming the HSM as JSON.
func runHSMClusterKey(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hsm cluster-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the cluster's HSM directory (created; holds cluster.key, 0600)")
	clusterID := fs.String("cluster-id", "", "the cluster's id")
	hsmID := fs.String("hsm-id", "", "the HSM publishing the key")
	sealing := fs.String("sealing-key", "", "the file of the key sealing the cluster key, - for stdin")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: coffer hsm cluster-key --dir DIR --cluster-id ID --hsm-id ID --sealing-key FILE|-\n\n"+
			"Makes the cluster key in DIR if it has none, and prints {\"cluster_csr\", \"hsm_certificate\"}.\n"+
			"The control plane runs it; the same DIR always gives the same CSR.\n\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *clusterID == "" || *hsmID == "" || *sealing == "" {
		fs.Usage()
		return errors.New("--dir, --cluster-id, --hsm-id and --sealing-key are required")
	}
	sk, err := readSealingKey(*sealing, stdin, false)
	if err != nil {
		return err
	}
	keyPath, csrPath := filepath.Join(*dir, clusterKeyFile), filepath.Join(*dir, "cluster.csr")
	if !exists(keyPath) {
		key, err := pki.NewClusterKey()
		if err != nil {
			return err
		}
		csr, err := pki.NewClusterCSR(key, *clusterID)
		if err != nil {
			return err
		}
		// The CSR first: a key without its CSR is remade, never the reverse.
		if err := writeFileAtomic(csrPath, csr, 0o644); err != nil {
			return err
		}
		if err := writeClusterKey(keyPath, sk, key); err != nil {
			return err
		}
	}
	key, err := readClusterKey(keyPath, sk, stderr)
	if err != nil {
		return err
	}
	csrPEM, err := os.ReadFile(csrPath)
	if err != nil {
		return err
	}
	csr, err := pki.DecodeCSRPEM(csrPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", csrPath, err)
	}
	if csr.Subject.CommonName != *clusterID {
		return fmt.Errorf("%s holds the key of cluster %q, not %q", *dir, csr.Subject.CommonName, *clusterID)
	}
	now := time.Now()
	hsmCert, err := pki.NewHsmCertificate(key, *clusterID, *hsmID, now.Add(-5*time.Minute), now.AddDate(10, 0, 0))
	if err != nil {
		return err
	}
	if err := pki.CheckHsmCertificate(hsmCert, csr); err != nil {
		return fmt.Errorf("%s: the cluster key does not match its CSR: %w", *dir, err)
	}
	return json.NewEncoder(stdout).Encode(map[string]string{
		"cluster_csr":     string(csrPEM),
		"hsm_certificate": string(pki.EncodeCertificatesPEM(hsmCert)),
	})
}

// runHSMIssueCert makes an HSM's TLS key and its node certificate, signed
// with the cluster key under the cluster certificate InitializeCluster
// accepted.
func runHSMIssueCert(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hsm issue-cert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clusterDir := fs.String("cluster-dir", "", "the cluster's HSM directory (from coffer hsm cluster-key)")
	clusterCert := fs.String("cluster-cert", "", "the signed cluster certificate (PEM, intermediates after it)")
	hsmID := fs.String("hsm-id", "", "the HSM's id")
	clusterID := fs.String("cluster-id", "", "the cluster the HSM serves (default: the cluster certificate's CommonName; a cluster restored from a backup of another names its own)")
	ip := fs.String("ip", "", "the HSM's address (its ENI IP)")
	out := fs.String("out", "", "directory for node.key.pem (0600) and node.crt")
	sealing := fs.String("sealing-key", "", "the file of the key sealing the cluster key, - for stdin")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: coffer hsm issue-cert --cluster-dir DIR --cluster-cert FILE [--cluster-id ID] --hsm-id ID --ip IP --out DIR --sealing-key FILE|-\n\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	addr := net.ParseIP(*ip)
	if *clusterDir == "" || *clusterCert == "" || *hsmID == "" || addr == nil || *out == "" || *sealing == "" {
		fs.Usage()
		return errors.New("--cluster-dir, --cluster-cert, --hsm-id, --ip (an IP address), --out and --sealing-key are required")
	}
	sk, err := readSealingKey(*sealing, stdin, false)
	if err != nil {
		return err
	}
	key, err := readClusterKey(filepath.Join(*clusterDir, clusterKeyFile), sk, stderr)
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(*clusterCert)
	if err != nil {
		return err
	}
	certs, err := pki.DecodeCertificatesPEM(certPEM, "cluster certificate")
	if err != nil {
		return fmt.Errorf("%s: %w", *clusterCert, err)
	}
	nodeKey, err := pki.NewNodeKey()
	if err != nil {
		return err
	}
	cert, err := pki.IssueNodeCert(key, certs[0], pki.NodeCertRequest{
		HsmID: *hsmID, ClusterID: *clusterID, PublicKey: nodeKey.Public(), IPs: []net.IP{addr}, NotAfter: certs[0].NotAfter,
	})
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodePrivateKeyPEM(nodeKey)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(*out, "node.key.pem"), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(*out, "node.crt"), pki.EncodeCertificatesPEM(cert), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stdout, filepath.Join(*out, "node.crt"))
	return nil
}

// runHSMSealClusterKey seals a plaintext cluster key an older Coffer left
// in a cluster directory; a sealed one is only checked to open.
func runHSMSealClusterKey(args []string, stdin io.Reader, stderr io.Writer) error {
	fs := flag.NewFlagSet("hsm seal-cluster-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the cluster's HSM directory")
	sealing := fs.String("sealing-key", "", "the file of the key sealing the cluster key, - for stdin")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *sealing == "" {
		fs.Usage()
		return errors.New("--dir and --sealing-key are required")
	}
	sk, err := readSealingKey(*sealing, stdin, false)
	if err != nil {
		return err
	}
	_, err = readClusterKey(filepath.Join(*dir, clusterKeyFile), sk, stderr)
	return err
}

// clusterKeyFile is the cluster key's file in a cluster directory.
const clusterKeyFile = "cluster.key"

// readSealingKey reads the sealing key from the file path, or from stdin
// when path is "-"; create makes a missing file.
func readSealingKey(path string, stdin io.Reader, create bool) ([]byte, error) {
	if path != "-" {
		return pki.SealingKeyFile(path, create)
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 256))
	if err != nil {
		return nil, fmt.Errorf("sealing key from stdin: %w", err)
	}
	k, err := pki.DecodeSealingKey(b)
	if err != nil {
		return nil, fmt.Errorf("sealing key from stdin: %w", err)
	}
	return k, nil
}

// writeClusterKey writes key sealed under sk (0600).
func writeClusterKey(path string, sk []byte, key crypto.Signer) error {
	sealed, err := pki.SealClusterKey(sk, key)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, sealed, 0o600)
}

// readClusterKey opens the sealed cluster key at path. A plaintext PEM key
// left by an older Coffer is sealed in place first (and said so on
// stderr), so it is never read from a plaintext file twice.
func readClusterKey(path string, sk []byte, stderr io.Writer) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the cluster key: %w", err)
	}
	if !pki.IsSealedClusterKey(b) {
		key, err := pki.DecodePrivateKeyPEM(b)
		clear(b)
		if err != nil {
			return nil, fmt.Errorf("%s: neither a sealed cluster key nor a plaintext one: %w", path, err)
		}
		if err := writeClusterKey(path, sk, key); err != nil {
			return nil, fmt.Errorf("%s: seal the plaintext cluster key: %w", path, err)
		}
		fmt.Fprintf(stderr, "%s held the cluster key in the clear; sealed it in place. Copies of the old file (backups) still hold it.\n", path)
		return key, nil
	}
	key, err := pki.OpenClusterKey(sk, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// writeFileAtomic creates path's directory (0700) and writes the file as
// durable.WriteFile does: a new temporary file, fsync, rename, directory
// fsync.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return durable.WriteFile(path, data, mode)
}
