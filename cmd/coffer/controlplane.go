package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coffer-hsm/coffer/internal/controlplane"
	"github.com/coffer-hsm/coffer/internal/durable"
)

const controlplaneUsage = `usage: coffer controlplane --data-dir DIR [--listen 127.0.0.1:PORT] [--regions R1,R2] [--credentials FILE]
                          [--backup-stores FILE] [--backup-interval 24h]

Serves the AWS cloudhsmv2 API; the aws CLI and SDKs use it with --endpoint-url.
Each region has the VPC vpc-c0ffee0<i> and subnets subnet-<i>aaaaaaa (AZ a),
subnet-<i>bbbbbbb (b) and subnet-<i>ccccccc (c), i the region's index in --regions.
Without --credentials, DIR/credentials.json is made once and used.
HSM nodes keep running when the control plane stops, and are adopted when it
starts again.
Backup blobs go to DIR/backups/<region> unless --backup-stores names, per
region, a directory or an S3-compatible bucket (a 0600 JSON file):
  {"us-east-1": {"s3": {"endpoint": "http://127.0.0.1:8333", "bucket": "hsm-backups",
    "prefix": "us-east-1/", "access_key_id": "...", "secret_access_key": "..."}},
   "us-west-2": {"dir": "/srv/coffer-backups/us-west-2"}}

Example:
  coffer controlplane --data-dir ./cp --listen 127.0.0.1:2280 &
  export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...   (from ./cp/credentials.json)
  aws cloudhsmv2 describe-clusters --endpoint-url http://127.0.0.1:2280 --region us-east-1

`

// controlPlaneOptions are what `coffer controlplane` and `coffer up` share.
type controlPlaneOptions struct {
	dataDir     string
	listen      string
	regions     []string
	credentials string // file; "" means DATA/credentials.json, made if missing
	stopNodes   bool   // stop the HSM nodes on exit (coffer up)
	// backupKey is the fleet backup key file the HSMs seal backups under;
	// "" means the HSM side's directory's backup.key (made if missing).
	backupKey string
	logger    *slog.Logger
	// backupStores is the file of the regions' backup stores ("": each
	// region's directory under the data dir); backupInterval the periodic
	// backup interval (zero: 24h).
	backupStores   string
	backupInterval time.Duration
}

// runningControlPlane is a control plane serving in this process.
type runningControlPlane struct {
	srv      *controlplane.Server
	prov     *controlplane.Processes
	http     *http.Server
	endpoint string
	cred     controlplane.Credential
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errc     chan error

	stopNodesOnExit bool
}

func runControlPlane(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "directory for the control plane's database and the HSMs (created)")
	listen := fs.String("listen", "127.0.0.1:2280", "address of the API (loopback: it serves plain HTTP)")
	regions := fs.String("regions", "us-east-1,us-west-2", "regions served, comma-separated")
	creds := fs.String("credentials", "", `JSON file of access keys: [{"access_key_id", "secret_access_key", "account_id"}]`)
	stopNodes := fs.Bool("stop-nodes", false, "stop the HSM nodes when the control plane stops (default: leave them running)")
	backupKey := fs.String("backup-key", "", "the fleet backup key file of the HSMs (0600, made if missing; default: DATA/hsm-side/backup.key); copy it to another deployment to restore its backups there")
	backupStores, backupInterval := backupFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, controlplaneUsage)
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dataDir == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("--data-dir is required")
	}
	// Ctrl-C and SIGTERM stop it cleanly, whoever called run.
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	cp, err := startControlPlane(ctx, controlPlaneOptions{
		dataDir: *dataDir, listen: *listen, regions: strings.Split(*regions, ","), credentials: *creds,
		stopNodes: *stopNodes, backupKey: *backupKey, logger: newLogger(stderr), backupStores: *backupStores, backupInterval: *backupInterval,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "control plane at %s (regions %s); access key %s\n", cp.endpoint, *regions, cp.cred.AccessKeyID)
	select {
	case <-ctx.Done():
	case err = <-cp.errc:
	}
	return errors.Join(err, cp.stop())
}

func startControlPlane(ctx context.Context, o controlPlaneOptions) (*runningControlPlane, error) {
	if err := checkLoopbackListen(o.listen); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return nil, err
	}
	credPath := o.credentials
	if credPath == "" {
		credPath = filepath.Join(o.dataDir, "credentials.json")
		if err := makeCredentials(credPath); err != nil {
			return nil, err
		}
		if was, err := keepPrivate(credPath); err != nil {
			return nil, err
		} else if was != 0 {
			o.logger.Warn("the access keys were open to others; made the file 0600", "path", credPath, "mode", fmt.Sprintf("%04o", was))
		}
	}
	creds, err := readCredentials(credPath)
	if err != nil {
		return nil, err
	}
	exe, err := cofferExecutable()
	if err != nil {
		return nil, err
	}
	testCost, err := wantTestPasswordCost(os.Getenv, runningTests)
	if err != nil {
		return nil, err
	}
	prov, err := controlplane.NewProcesses(controlplane.ProcessesConfig{
		Dir: filepath.Join(o.dataDir, "hsm-side"), Executable: exe, Logger: o.logger.With("part", "provisioner"),
		SealingKeyPath: filepath.Join(o.dataDir, "cluster-sealing.key"), BackupKeyPath: o.backupKey,
		TestPasswordCost: testCost,
	})
	if err != nil {
		return nil, err
	}
	if err := prov.SealClusterKeys(ctx); err != nil {
		return nil, err
	}
	var regions []controlplane.Region
	for i, name := range o.regions {
		regions = append(regions, controlplane.DefaultRegion(strings.TrimSpace(name), i))
	}
	if o.backupStores != "" {
		if err := readBackupStores(o.backupStores, regions); err != nil {
			return nil, err
		}
	}
	srv, err := controlplane.New(controlplane.Config{
		DataDir: o.dataDir, Regions: regions, Credentials: creds, Provisioner: prov,
		AddressBase: addressBase(), Logger: o.logger.With("part", "controlplane"),
		BackupInterval: o.backupInterval,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	cp := &runningControlPlane{
		srv: srv, prov: prov, endpoint: "http://" + ln.Addr().String(), cred: creds[0], cancel: cancel,
		http: srv.HTTPServer(), errc: make(chan error, 2),
	}
	cp.wg.Go(func() {
		if err := srv.Run(ctx); err != nil {
			cp.errc <- err
		}
	})
	cp.wg.Go(func() {
		if err := cp.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cp.errc <- err
		}
	})
	cp.stopNodesOnExit = o.stopNodes
	return cp, nil
}

// stop ends the API and the reconciler, stops the nodes if asked, and
// closes the database.
func (cp *runningControlPlane) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cp.http.Shutdown(ctx)
	cp.cancel()
	cp.wg.Wait()
	return errors.Join(err, cp.prov.Close(ctx, cp.stopNodesOnExit), cp.srv.Close())
}

// cofferExecutable is the binary the HSM nodes run: this one, by the name
// it was started as (tests run coffer as a copy of the test binary named
// "coffer", and dispatch on that name).
func cofferExecutable() (string, error) {
	if p := os.Args[0]; p != "" {
		if !strings.Contains(p, "/") {
			if lp, err := exec.LookPath(p); err == nil {
				p = lp
			}
		}
		if abs, err := filepath.Abs(p); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs, nil
			}
		}
	}
	return os.Executable()
}

// addressBase: COFFER_ADDRESS_BASE moves the HSMs' loopback addresses
// (127.<base+region>.n.(11+az)), so that control planes on one machine
// (tests) do not share them.
func addressBase() int {
	var n int
	if v := os.Getenv("COFFER_ADDRESS_BASE"); v != "" {
		fmt.Sscan(v, &n)
	}
	return n
}

func checkLoopbackListen(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: want host:port", addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("--listen %q: the control plane serves plain HTTP, so it listens on loopback only (TLS is not implemented yet)", addr)
	}
	return nil
}

// makeCredentials writes one random access key to path unless it exists.
func makeCredentials(path string) error {
	if exists(path) {
		return nil
	}
	const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	const secretChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	random := func(alphabet string, n int) string {
		b := make([]byte, n)
		for i := range b {
			v, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
			b[i] = alphabet[v.Int64()]
		}
		return string(b)
	}
	c := []controlplane.Credential{{
		AccessKeyID: "AKIA" + random(upper, 16), SecretAccessKey: random(secretChars, 40),
		AccountID: random("123456789", 1) + random("0123456789", 11),
	}}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFileAll(path, append(b, '\n'), 0o600)
}

// backupFlags are the backup flags of `coffer controlplane` and `coffer up`.
func backupFlags(fs *flag.FlagSet) (stores *string, interval *time.Duration) {
	stores = fs.String("backup-stores", "", `JSON file of the regions' backup stores: {"REGION": {"dir": DIR} or {"s3": {...}}} (default: DATA/backups/REGION)`)
	interval = fs.Duration("backup-interval", 24*time.Hour, "how often every initialized cluster is backed up")
	return stores, interval
}

// readBackupStores sets the backup store of each region the file names.
// A file that holds S3 secret keys must not be open to others.
func readBackupStores(path string, regions []controlplane.Region) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m map[string]controlplane.BackupStoreConfig
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for name, st := range m {
		i := slices.IndexFunc(regions, func(r controlplane.Region) bool { return r.Name == name })
		if i < 0 {
			return fmt.Errorf("%s: region %q is not served", path, name)
		}
		if st.S3 != nil && st.S3.SecretAccessKey != "" {
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o077 != 0 {
				return fmt.Errorf("%s holds S3 secret keys and is open to others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
			}
		}
		regions[i].Backups = st
	}
	return nil
}

func readCredentials(path string) ([]controlplane.Credential, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c []controlplane.Credential
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("%s: no access keys", path)
	}
	return c, nil
}
