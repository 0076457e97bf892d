package main

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-hsm/coffer/internal/backup"
	"github.com/coffer-hsm/coffer/internal/durable"
	"github.com/coffer-hsm/coffer/internal/pki"
)

const hsmUsage = `usage: coffer hsm <command> [flags]

commands:
  init          make (or extend) a cluster's certificates and one config file per HSM
  run           run one HSM node from its config file
  unlock-admin  on a stopped HSM's host: unlock an admin when every admin is locked
  backup        ask a running HSM for a backup of its cluster (sealed under the backup key)
  restore-cluster  verify a backup and prepare a new cluster's HSM side from it
  backup-key    make the fleet backup key file (--create PATH)
  selftest      run the known-answer tests an HSM runs at start, on this binary's crypto backend

Example: a three-HSM cluster on this machine
  coffer hsm init --dir ./cluster --node 1=127.0.0.11:2223 --node 2=127.0.0.12:2223 --node 3=127.0.0.13:2223
  coffer hsm run --config ./cluster/hsm-1.json &
  coffer hsm run --config ./cluster/hsm-2.json &
  coffer hsm run --config ./cluster/hsm-3.json &
`

func runHSM(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, hsmUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "init":
		return runHSMInit(args[1:], stdout, stderr)
	case "run":
		return runHSMRun(ctx, args[1:], stderr)
	case "unlock-admin":
		return runHSMUnlockAdmin(ctx, args[1:], stdout, stderr)
	case "cluster-key":
		return runHSMClusterKey(args[1:], stdin, stdout, stderr)
	case "issue-cert":
		return runHSMIssueCert(args[1:], stdin, stdout, stderr)
	case "seal-cluster-key":
		return runHSMSealClusterKey(args[1:], stdin, stderr)
	case "backup":
		return runHSMBackup(ctx, args[1:], stdin, stdout, stderr)
	case "restore-cluster":
		return runHSMRestoreCluster(args[1:], stdin, stdout, stderr)
	case "backup-key":
		return runHSMBackupKey(args[1:], stdout, stderr)
	case "selftest":
		return runHSMSelfTest(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, hsmUsage)
		return nil
	}
	fmt.Fprint(stderr, hsmUsage)
	return fmt.Errorf("unknown hsm command %q", args[0])
}

// nodeFlag collects --node ID=HOST:PORT.
type nodeFlag map[uint32]string

func (n nodeFlag) String() string { return fmt.Sprint(map[uint32]string(n)) }

func (n nodeFlag) Set(s string) error {
	id, addr, ok := strings.Cut(s, "=")
	v, err := strconv.ParseUint(id, 10, 32)
	if !ok || err != nil || v == 0 {
		return fmt.Errorf("want ID=HOST:PORT with a positive ID, got %q", s)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) == nil {
		return fmt.Errorf("%q: want an IP address and port, e.g. 127.0.0.11:2223", addr)
	}
	n[uint32(v)] = addr
	return nil
}

// runHSMInit plays the parts that the control plane plays once it exists:
// the customer's CA signs the cluster's CSR, and node certificates are
// issued under the cluster certificate. The cluster key lives in
// DIR/cluster/cluster.key, sealed under the sealing key (--sealing-key,
// by default DIR/sealing.key, outside DIR/cluster); keep both private, and
// the sealing key elsewhere when DIR/cluster is copied around.
func runHSMInit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hsm init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for certificates, keys and HSM config files (created)")
	clusterID := fs.String("cluster-id", "cluster-local", "the cluster's id")
	sealing := fs.String("sealing-key", "", "the key sealing the cluster key (created if missing; default DIR/sealing.key)")
	nodes := nodeFlag{}
	fs.Var(nodes, "node", "an HSM as ID=IP:PORT (repeat); init again with more to add HSMs")
	backupKey := fs.String("backup-key", "", "the fleet backup key file the HSMs back up under (created if missing, 0600); none: no backups")
	loginDelay := fs.Duration("login-failure-delay", 0,
		"a fixed pause a client address keeps after each failed login (default: 2s, growing 4x per failure up to 15m)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: coffer hsm init --dir DIR --node ID=IP:PORT ...\n\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || len(nodes) == 0 {
		fs.Usage()
		return errors.New("--dir and at least one --node are required")
	}
	testCost, err := wantTestPasswordCost(os.Getenv, runningTests)
	if err != nil {
		return err
	}
	if *sealing == "" {
		*sealing = filepath.Join(*dir, "sealing.key")
	}
	sk, err := pki.SealingKeyFile(*sealing, true)
	if err != nil {
		return err
	}
	cc, clusterKey, err := initClusterCertificates(*dir, *clusterID, sk, stderr)
	if err != nil {
		return err
	}

	// Every HSM named now or before, each with a certificate and a config.
	all := map[uint32]*hsmFile{}
	matches, _ := filepath.Glob(filepath.Join(*dir, "hsm-*.json"))
	for _, m := range matches {
		f, err := readRawHSMFile(m)
		if err != nil {
			return err
		}
		all[f.NodeID] = f
	}
	first := len(all) == 0
	ids := slices.Sorted(func(yield func(uint32) bool) {
		for id := range nodes {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		addr := nodes[id]
		if f, ok := all[id]; ok {
			if f.Listen != addr {
				return fmt.Errorf("HSM %d already listens on %s, not %s", id, f.Listen, addr)
			}
			continue
		}
		host, _, _ := net.SplitHostPort(addr)
		name := fmt.Sprintf("hsm-%d", id)
		_, err := pki.IssueNodeCertFiles(filepath.Join(*dir, name), clusterKey, cc.Certificate, pki.NodeCertRequest{
			HsmID: name, IPs: []net.IP{net.ParseIP(host)}, NotAfter: cc.Certificate.NotAfter,
		})
		if err != nil {
			return err
		}
		mk := "clone"
		if first && id == ids[0] {
			mk = "create"
		}
		all[id] = &hsmFile{
			DataDir: filepath.Join(name, "data"), Listen: addr, NodeID: id, ClusterID: *clusterID, HSMID: name,
			Certificate: filepath.Join(name, pki.NodeCertFile), PrivateKey: filepath.Join(name, pki.NodeKeyFile),
			ClusterCertificate: filepath.Join("cluster", pki.ClusterCertFile), TrustAnchor: "customerCA.crt", MaskingKey: mk,
			MetricsListen: net.JoinHostPort(host, "0"),
		}
	}
	if *backupKey != "" {
		abs, err := filepath.Abs(*backupKey)
		if err != nil {
			return err
		}
		if _, err := backup.CreateKeyFile(abs); err != nil {
			return err
		}
		for _, f := range all {
			f.BackupKey = abs
		}
	}
	if *loginDelay > 0 {
		for _, f := range all {
			f.LoginFailureDelay, f.LoginMaxFailureDelay = loginDelay.String(), loginDelay.String()
		}
	}
	if testCost {
		for _, f := range all {
			f.TestPasswordCost = true
		}
	}
	return writeHSMFiles(*dir, all, stdout)
}

// initClusterCertificates makes (once) the customer CA of DIR/customerCA.*
// and the cluster key, CSR and certificate it signs in DIR/cluster, and
// returns the cluster's certificates and key.
func initClusterCertificates(dir, clusterID string, sk []byte, stderr io.Writer) (*pki.ClusterCertificates, crypto.Signer, error) {
	notAfter := time.Now().AddDate(10, 0, 0)
	caCertPath, caKeyPath := filepath.Join(dir, "customerCA.crt"), filepath.Join(dir, "customerCA.key")
	clusterDir := filepath.Join(dir, "cluster")
	clusterCertPath := filepath.Join(clusterDir, pki.ClusterCertFile)
	if err := pki.NewCustomerCAFiles(caCertPath, caKeyPath, "Coffer customer CA", notAfter); err != nil {
		return nil, nil, err
	}
	if !exists(clusterCertPath) {
		caCert, caKey, err := pki.LoadCustomerCA(caCertPath, caKeyPath)
		if err != nil {
			return nil, nil, err
		}
		if err := pki.NewSignedClusterFiles(clusterDir, clusterID, sk, caCert, caKey, notAfter); err != nil {
			return nil, nil, err
		}
	}
	cc, err := pki.ReadClusterCertificates(clusterCertPath, caCertPath)
	if err != nil {
		return nil, nil, err
	}
	if cc.ClusterID != clusterID {
		return nil, nil, fmt.Errorf("%s already holds cluster %q", dir, cc.ClusterID)
	}
	clusterKey, err := readClusterKey(filepath.Join(clusterDir, pki.ClusterKeyFile), sk, stderr)
	if err != nil {
		return nil, nil, err
	}
	return cc, clusterKey, nil
}

// writeHSMFiles writes DIR/hsm-N.json for every HSM, each naming all the
// others as its peers, and prints each file's path, address and masking
// key source.
func writeHSMFiles(dir string, all map[uint32]*hsmFile, stdout io.Writer) error {
	for id, f := range all {
		f.Peers = f.Peers[:0]
		for pid, p := range all {
			if pid != id {
				f.Peers = append(f.Peers, peerFile{ID: pid, HSMID: p.HSMID, Address: p.Listen})
			}
		}
		slices.SortFunc(f.Peers, func(a, b peerFile) int { return int(a.ID) - int(b.ID) })
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			return err
		}
		path := filepath.Join(dir, fmt.Sprintf("hsm-%d.json", id))
		if err := durable.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", path, f.Listen, f.MaskingKey)
	}
	return nil
}

func readRawHSMFile(path string) (*hsmFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f hsmFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
