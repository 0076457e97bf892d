package main

import (
	"context"
	"crypto"
	"crypto/x509"
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/coffer-hsm/coffer/internal/backup"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/node"
	"github.com/coffer-hsm/coffer/internal/pki"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// The HSM side of backups (internal/backup). The backup key is a file of
// the HSM side, named in each node's config (backup_key); these tools and
// the nodes open it, the control plane never does.

// exitRefused is the exit status of restore-cluster for a blob it refuses.
const exitRefused = 3

// backupTimeout bounds one backup call to the node.
const backupTimeout = 10 * time.Minute

// runHSMBackup asks the running node of a config file for a backup blob,
// presenting the node's own node certificate, writes it to --out (fsync'd)
// and verifies it under the backup key before reporting success.
func runHSMBackup(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hsm backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "the HSM's config file (it names the backup key)")
	id := fs.String("backup-id", "", "the backup id the blob is bound to")
	clusterDir := fs.String("cluster-dir", "", "the cluster's HSM directory (cluster.key, cluster.csr); the key travels in the blob, sealed")
	sealing := fs.String("sealing-key", "", "the file of the key sealing the cluster key, - for stdin (with --cluster-dir)")
	out := fs.String("out", "", "where to write the blob")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: coffer hsm backup --config HSM.json --backup-id ID [--cluster-dir DIR --sealing-key FILE|-] --out PATH\n\n"+
			"Prints {\"records\": N, \"bytes\": B}.\n\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *config == "" || *id == "" || *out == "" || (*clusterDir != "") != (*sealing != "") {
		fs.Usage()
		return errors.New("--config, --backup-id and --out are required, and --cluster-dir goes with --sealing-key")
	}
	f, err := readHSMFile(*config)
	if err != nil {
		return err
	}
	if f.BackupKey == "" {
		return fmt.Errorf("%s names no backup_key: this HSM makes no backups", *config)
	}
	ident, err := loadIdentity(f, time.Now)
	if err != nil {
		return err
	}
	req := &hsmv1.BackupRequest{BackupId: *id}
	for _, p := range []struct {
		path string
		dst  *string
	}{{f.ClusterCertificate, &req.ClusterCertificate}, {f.TrustAnchor, &req.TrustAnchor}} {
		b, err := os.ReadFile(p.path)
		if err != nil {
			return err
		}
		*p.dst = string(b)
	}
	if *clusterDir != "" {
		sk, err := readSealingKey(*sealing, stdin, false)
		if err != nil {
			return err
		}
		key, err := readClusterKey(filepath.Join(*clusterDir, pki.ClusterKeyFile), sk, stderr)
		clear(sk)
		if err != nil {
			return err
		}
		if req.ClusterKey, err = x509.MarshalPKCS8PrivateKey(key); err != nil {
			return fmt.Errorf("the cluster key: %w", err)
		}
		csr, err := os.ReadFile(filepath.Join(*clusterDir, pki.ClusterCSRFile))
		if err != nil {
			return err
		}
		req.ClusterCsr = string(csr)
	}
	host, _, err := net.SplitHostPort(f.Listen)
	if err != nil {
		return fmt.Errorf("%s: listen %q: %w", *config, f.Listen, err)
	}
	tc, err := pki.NodeClientConfig(ident.cert, ident.trust, host)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(f.Listen, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, backupTimeout)
	defer cancel()
	stream, err := hsmv1.NewOperatorClient(conn).Backup(ctx, req)
	clear(req.ClusterKey)
	if err != nil {
		return fmt.Errorf("backup from %s: %w", f.Listen, err)
	}
	w, err := durable.Create(*out, 0o600)
	if err != nil {
		return err
	}
	defer w.Abort()
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("backup from %s: %w", f.Listen, err)
		}
		if _, err := w.Write(chunk.GetData()); err != nil {
			return err
		}
	}
	fi, err := w.Stat()
	if err != nil {
		return err
	}
	// What the node sent must open as the backup asked for.
	key, err := backup.ReadKeyFile(f.BackupKey)
	if err != nil {
		return err
	}
	b, err := backup.Open(w, fi.Size(), key, *id)
	clear(key)
	if err != nil {
		return fmt.Errorf("the node's blob: %w", err)
	}
	b.Wipe()
	if err := w.Commit(); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]int64{"records": int64(b.Header.Records), "bytes": fi.Size()})
}

// restoredCluster is what restore-cluster prints.
type restoredCluster struct {
	SourceClusterID    string `json:"source_cluster_id"`
	ClusterCSR         string `json:"cluster_csr"`
	ClusterCertificate string `json:"cluster_certificate"`
	TrustAnchor        string `json:"trust_anchor"`
	Activated          bool   `json:"activated"`
	FIPS               bool   `json:"fips"`
	Created            string `json:"created"` // RFC 3339
	// NextNodeID is one past the highest node id the backup names (the
	// node that made it, and every node its cluster recorded as joined).
	NextNodeID uint32 `json:"next_node_id"`
}

// runHSMRestoreCluster verifies a whole blob and writes the cluster key
// (sealed) and CSR it holds into a new cluster directory. A refused blob
// exits with status 3 and one line on stderr naming what is wrong.
func runHSMRestoreCluster(args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("hsm restore-cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the new cluster's HSM directory (created; must not hold a cluster key)")
	keyPath := fs.String("backup-key", "", "the fleet backup key file")
	id := fs.String("backup-id", "", "the backup id the blob must be bound to")
	blobPath := fs.String("blob", "", "the backup blob")
	sealing := fs.String("sealing-key", "", "the file of the key sealing the cluster key, - for stdin")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: coffer hsm restore-cluster --dir DIR --backup-key PATH --backup-id ID --blob PATH --sealing-key FILE|-\n\n"+
			"Exit status 3: the blob is refused (the line on stderr says why).\n\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *keyPath == "" || *id == "" || *blobPath == "" || *sealing == "" {
		fs.Usage()
		return errors.New("--dir, --backup-key, --backup-id, --blob and --sealing-key are required")
	}
	sk, err := readSealingKey(*sealing, stdin, false)
	if err != nil {
		return err
	}
	defer clear(sk)
	key, err := backup.ReadKeyFile(*keyPath)
	if err != nil {
		return err
	}
	defer clear(key)
	f, err := os.Open(*blobPath)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	b, err := backup.Open(f, fi.Size(), key, *id)
	if errors.Is(err, backup.ErrRefused) {
		fmt.Fprintln(stderr, err)
		return cli.ExitStatus(exitRefused)
	}
	if err != nil {
		return err
	}
	defer b.Wipe()
	der := b.ClusterKey()
	defer clear(der)
	if der == nil {
		fmt.Fprintf(stderr, "backup refused: backup %s holds no cluster key\n", *id)
		return cli.ExitStatus(exitRefused)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	signer, ok := parsed.(crypto.Signer)
	if err != nil || !ok {
		fmt.Fprintf(stderr, "backup refused: the cluster key of backup %s does not parse\n", *id)
		return cli.ExitStatus(exitRefused)
	}
	csr, err := pki.DecodeCSRPEM([]byte(b.Header.ClusterCSR))
	if err != nil || !signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(csr.PublicKey) {
		fmt.Fprintf(stderr, "backup refused: the cluster CSR of backup %s is not its cluster key's\n", *id)
		return cli.ExitStatus(exitRefused)
	}
	keyFile := filepath.Join(*dir, pki.ClusterKeyFile)
	if exists(keyFile) {
		return fmt.Errorf("%s holds a cluster key already: restore into a new cluster directory", *dir)
	}
	defer func() {
		if err != nil {
			os.Remove(keyFile)
			os.Remove(filepath.Join(*dir, pki.ClusterCSRFile))
		}
	}()
	if err := pki.WriteClusterKeyFiles(*dir, sk, signer, []byte(b.Header.ClusterCSR)); err != nil {
		return err
	}
	h := b.Header
	maxID := h.NodeID
	err = b.Records(context.Background(), func(rec store.Sealed) error {
		if rec.Kind == store.KindSetting {
			if id, ok := node.JoinedNodeID(rec.ID); ok {
				maxID = max(maxID, id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(restoredCluster{
		SourceClusterID: h.SourceClusterID, ClusterCSR: h.ClusterCSR, ClusterCertificate: h.ClusterCertificate,
		TrustAnchor: h.TrustAnchor, Activated: h.Activated, FIPS: h.FIPS, Created: h.Created.Format(time.RFC3339Nano),
		NextNodeID: maxID + 1,
	})
}

// runHSMBackupKey makes the fleet backup key once per deployment.
func runHSMBackupKey(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hsm backup-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("create", "", "make the backup key file PATH (0600) if it does not exist; an existing one is checked")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: coffer hsm backup-key --create PATH\n\n"+
			"The key every HSM of a deployment seals backups under. Give it to another\n"+
			"deployment's HSMs by copying the file (0600) and naming it with --backup-key.\n\n")
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fs.Usage()
		return errors.New("--create is required")
	}
	created, err := backup.CreateKeyFile(*path)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintln(stdout, "created", *path)
	} else {
		fmt.Fprintln(stdout, "exists", *path)
	}
	return nil
}
