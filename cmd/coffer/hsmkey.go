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
	keyPath := filepath.Join(*dir, pki.ClusterKeyFile)
	if !exists(keyPath) {
		if _, _, err := pki.NewClusterKeyFiles(*dir, *clusterID, sk); err != nil {
			return err
		}
	}
	key, err := readClusterKey(keyPath, sk, stderr)
	if err != nil {
		return err
	}
	csrPEM, hsmCert, err := pki.ClusterKeyHsmCertificate(*dir, key, *clusterID, *hsmID, time.Now())
	if err != nil {
		return err
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
	key, err := readClusterKey(filepath.Join(*clusterDir, pki.ClusterKeyFile), sk, stderr)
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
	_, err = pki.IssueNodeCertFiles(*out, key, certs[0], pki.NodeCertRequest{
		HsmID: *hsmID, ClusterID: *clusterID, IPs: []net.IP{addr}, NotAfter: certs[0].NotAfter,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, filepath.Join(*out, pki.NodeCertFile))
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
	_, err = readClusterKey(filepath.Join(*dir, pki.ClusterKeyFile), sk, stderr)
	return err
}

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

// readClusterKey opens the sealed cluster key at path (pki.ReadClusterKey),
// saying on stderr when it sealed a plaintext key an older Coffer left.
func readClusterKey(path string, sk []byte, stderr io.Writer) (crypto.Signer, error) {
	key, resealed, err := pki.ReadClusterKey(path, sk)
	if err != nil {
		return nil, err
	}
	if resealed {
		fmt.Fprintf(stderr, "%s held the cluster key in the clear; sealed it in place. Copies of the old file (backups) still hold it.\n", path)
	}
	return key, nil
}
