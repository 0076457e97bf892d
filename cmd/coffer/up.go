package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/controlplane"
	"github.com/coffer-hsm/coffer/internal/durable"
	"github.com/coffer-hsm/coffer/internal/pki"
)

const upUsage = `usage: coffer up --data-dir DIR [--listen 127.0.0.1:PORT] [--fips] [--detach [--wait-timeout 2m]]

Starts, in the foreground, a control plane and a cluster of two HSMs in two
availability zones, initialized under a customer CA made in DIR and
activated, with one crypto user. Once the cluster is ACTIVE and every HSM
knows the crypto user, writes DIR/up.json (endpoint, credentials, HSM
addresses, passwords; mode 0600; never before) and DIR/pkcs11.json, and
prints how to use the cluster, but no secret: those stay in up.json. Run it
again on the same DIR to resume the same cluster. Ctrl-C stops everything.

With --detach it runs in the background instead (its log in DIR/up.log, its
pid in DIR/up.pid) and returns once the cluster is ready: exit 0, or non-zero
with the end of the log if it was not ready within --wait-timeout.
` + "`coffer down --data-dir DIR`" + ` stops it and its HSMs. One coffer up at a
time serves a DIR.

With --fips the cluster is an hsm2m.medium cluster in FIPS mode: only
mechanisms FIPS mode approves, and HSMs that run their cryptography in a
FIPS 140-3 module (BoringCrypto's, or Go's in FIPS 140-3 mode).

`

// upFile is DIR/up.json: exactly these keys.
type upFile struct {
	Endpoint        string   `json:"endpoint"`
	Region          string   `json:"region"`
	AccessKeyID     string   `json:"access_key_id"`
	SecretAccessKey string   `json:"secret_access_key"`
	ClusterID       string   `json:"cluster_id"`
	HSMAddresses    []string `json:"hsm_addresses"`
	TrustAnchor     string   `json:"trust_anchor"`
	PKCS11Module    string   `json:"pkcs11_module"`
	PKCS11Config    string   `json:"pkcs11_config"`
	Admin           upUser   `json:"admin"`
	CryptoUser      upUser   `json:"crypto_user"`
}

type upUser struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

const (
	upRegion     = "us-east-1"
	upTagKey     = "coffer-up"
	upCryptoUser = "app_user"
	upWait       = 3 * time.Minute
)

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "directory for everything (created; run again to resume)")
	listen := fs.String("listen", "", "control plane address (default: the last one used, else 127.0.0.1:2280 or a free port)")
	backupKey := fs.String("backup-key", "", "the fleet backup key file of the HSMs (0600, made if missing; default: inside the HSM side's directory); name another deployment's copy to restore its backups")
	backupStores, backupInterval := backupFlags(fs)
	detach := fs.Bool("detach", false, "run in the background; return once the cluster is ready (stop it with coffer down)")
	fips := fs.Bool("fips", false, "make the cluster in FIPS mode (hsm2m.medium, mode FIPS); a DIR's cluster keeps the mode it was made in")
	waitTimeout := fs.Duration("wait-timeout", 2*time.Minute, "with --detach: how long the cluster has to become ready")
	fs.Usage = func() {
		fmt.Fprint(stderr, upUsage)
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dataDir == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("--data-dir is required")
	}
	notify := upNotifier() // before any child process starts
	if notify != nil {
		defer notify.Close()
	}
	// Ctrl-C and SIGTERM stop it cleanly, whoever called run.
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if *detach {
		if *waitTimeout <= 0 {
			return fmt.Errorf("--wait-timeout %v: want a positive duration", *waitTimeout)
		}
		return upDetach(ctx, dir, upChildArgs(fs, dir), *waitTimeout, stdout)
	}
	if flagSet(fs, "wait-timeout") {
		return errors.New("--wait-timeout is for --detach (in the foreground coffer up waits as long as it takes)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := lockUp(dir)
	if err != nil {
		return err
	}
	defer lock.release()
	upPath := filepath.Join(dir, "up.json")
	prev, err := readUpState(upPath, filepath.Join(dir, upPendingName), stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr)
	var cp *runningControlPlane
	for _, addr := range upListenCandidates(*listen, prev.Endpoint) {
		cp, err = startControlPlane(ctx, controlPlaneOptions{
			dataDir: filepath.Join(dir, "controlplane"), listen: addr, regions: []string{upRegion, "us-west-2"},
			stopNodes: true, backupKey: absOrEmpty(*backupKey), logger: log, backupStores: *backupStores, backupInterval: *backupInterval,
		})
		if err == nil || *listen != "" {
			break
		}
	}
	if err != nil {
		if *listen != "" && errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w: another process listens on %s; leave --listen out and coffer up picks a port itself (the last one used, else 127.0.0.1:2280, else a free one)", err, *listen)
		}
		return err
	}
	defer func() {
		fmt.Fprintln(stderr, "coffer up: stopping the HSMs and the control plane")
		if err := cp.stop(); err != nil {
			fmt.Fprintln(stderr, "coffer up:", err)
		}
	}()
	api := &apiClient{endpoint: cp.endpoint, region: upRegion, cred: cp.cred}
	up, err := bringUp(ctx, api, cp, dir, prev, upPath, *fips, stderr)
	if err != nil {
		return err
	}
	printUpUsage(stdout, up, upPath)
	if notify != nil {
		fmt.Fprintln(notify, "ready")
		notify.Close()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-cp.errc:
		return err
	}
}

// upPendingName is DIR/up.pending.json: up.json's content from before the
// cluster is ready (its passwords are recorded there before they are
// used, so that an interrupted run resumes with them). up.json itself
// exists only once a run made the cluster ready.
const upPendingName = "up.pending.json"

// readUpState reads what an earlier run recorded (the pending file if
// there is one: it is newer) and moves an up.json aside into the pending
// file until this run made the cluster ready again, so that an up.json
// always belongs to a ready cluster.
func readUpState(upPath, pendingPath string, stderr io.Writer) (upFile, error) {
	prev, err := readUpFile(upPath, stderr)
	if err != nil {
		return prev, err
	}
	published := exists(upPath)
	if exists(pendingPath) {
		if prev, err = readUpFile(pendingPath, stderr); err != nil {
			return prev, err
		}
	} else if published {
		if err := writeJSON(pendingPath, prev, 0o600); err != nil {
			return prev, err
		}
	}
	if published {
		if err := os.Remove(upPath); err != nil {
			return prev, err
		}
	}
	return prev, nil
}

// readUpFile reads the up.json of an earlier run, if there is one, first
// making it readable by its owner only.
func readUpFile(path string, stderr io.Writer) (upFile, error) {
	var prev upFile
	if err := keepPrivateSay(path, stderr); errors.Is(err, os.ErrNotExist) {
		return prev, nil
	} else if err != nil {
		return prev, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return prev, err
	}
	if err := json.Unmarshal(b, &prev); err != nil {
		return prev, fmt.Errorf("%s: %w", path, err)
	}
	return prev, nil
}

// keepPrivate makes a file that holds secrets (up.json, a private key,
// access keys) mode 0600 if others could read or write it, and returns the
// mode it had then (0 if it was private). It refuses what is not a regular
// file.
func keepPrivate(path string) (was os.FileMode, err error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s holds secrets but is not a regular file (%v)", path, fi.Mode().Type())
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return 0, nil
	}
	return perm, os.Chmod(path, 0o600)
}

// keepPrivateSay is keepPrivate, saying on w what it changed.
func keepPrivateSay(path string, w io.Writer) error {
	was, err := keepPrivate(path)
	if was != 0 && err == nil {
		fmt.Fprintf(w, "coffer: %s was mode %04o, open to others; it is 0600 now (what it holds may have been read)\n", path, was)
	}
	return err
}

func upListenCandidates(flagValue, prevEndpoint string) []string {
	if flagValue != "" {
		return []string{flagValue}
	}
	var out []string
	if a, ok := strings.CutPrefix(prevEndpoint, "http://"); ok {
		out = append(out, a)
	}
	return append(out, "127.0.0.1:2280", "127.0.0.1:0")
}

// bringUp makes (or finds) the cluster and takes it to ACTIVE with a crypto
// user, recording the passwords in the pending file before they are used
// and writing up.json once the cluster is ready.
func bringUp(ctx context.Context, api *apiClient, cp *runningControlPlane, dir string, prev upFile, upPath string, fips bool, stderr io.Writer) (upFile, error) {
	pendingPath := filepath.Join(dir, upPendingName)
	cl, err := upCluster(ctx, api, fips)
	if err != nil {
		return upFile{}, err
	}
	// Two HSMs in two availability zones.
	for _, az := range []string{upRegion + "a", upRegion + "b"} {
		if !slices.ContainsFunc(cl.Hsms, func(h controlplane.Hsm) bool {
			return h.AvailabilityZone == az && h.State != controlplane.HsmDeleteInProgress
		}) {
			if err := api.call(ctx, "CreateHsm", controlplane.CreateHsmRequest{ClusterId: cl.ClusterId, AvailabilityZone: az}, nil); err != nil {
				return upFile{}, err
			}
		}
	}
	anchorPath := filepath.Join(dir, "customerCA.crt")
	if cl.State == controlplane.ClusterUninitialized || cl.State == controlplane.ClusterCreateInProgress {
		cl, err = waitCluster(ctx, api, cl.ClusterId, "its ClusterCsr", func(c controlplane.Cluster) bool {
			return c.Certificates != nil && c.Certificates.ClusterCsr != ""
		})
		if err != nil {
			return upFile{}, err
		}
		caCert, caKey, err := upCustomerCA(dir, stderr)
		if err != nil {
			return upFile{}, err
		}
		signed, err := pki.SignCSR(caCert, caKey, []byte(cl.Certificates.ClusterCsr), caCert.NotAfter)
		if err != nil {
			return upFile{}, err
		}
		err = api.call(ctx, "InitializeCluster", controlplane.InitializeClusterRequest{
			ClusterId: cl.ClusterId, SignedCert: string(signed), TrustAnchor: string(pki.EncodeCertificatesPEM(caCert)),
		}, nil)
		if err != nil {
			return upFile{}, err
		}
	}
	cl, err = waitCluster(ctx, api, cl.ClusterId, "INITIALIZED with every HSM ACTIVE", func(c controlplane.Cluster) bool {
		return (c.State == controlplane.ClusterInitialized || c.State == controlplane.ClusterActive) &&
			!slices.ContainsFunc(c.Hsms, func(h controlplane.Hsm) bool { return h.State != controlplane.HsmActive })
	})
	if err != nil {
		return upFile{}, err
	}
	addrs, err := cp.srv.HSMAddresses(upRegion, cl.ClusterId)
	if err != nil {
		return upFile{}, err
	}
	exe, _ := cofferExecutable()
	up := upFile{
		Endpoint: cp.endpoint, Region: upRegion, AccessKeyID: cp.cred.AccessKeyID, SecretAccessKey: cp.cred.SecretAccessKey,
		ClusterID: cl.ClusterId, HSMAddresses: addrs, TrustAnchor: anchorPath,
		PKCS11Module: filepath.Join(filepath.Dir(exe), "libcoffer_pkcs11.so"), PKCS11Config: filepath.Join(dir, "pkcs11.json"),
		Admin: prev.Admin, CryptoUser: prev.CryptoUser,
	}
	if prev.ClusterID != cl.ClusterId || up.Admin.Password == "" {
		up.Admin = upUser{Username: "admin", Password: randomPassword()}
		up.CryptoUser = upUser{Username: upCryptoUser, Password: randomPassword()}
	}
	file := client.File{HSMs: addrs, HSMCACert: anchorPath, ClusterID: cl.ClusterId}
	if err := file.WriteFile(up.PKCS11Config); err != nil {
		return upFile{}, err
	}
	if err := writeJSON(pendingPath, up, 0o600); err != nil {
		return upFile{}, err
	}
	if err := waitNodes(ctx, file); err != nil {
		return upFile{}, err
	}
	if cl.State != controlplane.ClusterActive {
		if err := activate(ctx, file, up); err != nil {
			return upFile{}, err
		}
		if _, err := waitCluster(ctx, api, cl.ClusterId, "ACTIVE", func(c controlplane.Cluster) bool {
			return c.State == controlplane.ClusterActive
		}); err != nil {
			return upFile{}, err
		}
	}
	if err := writeJSON(upPath, up, 0o600); err != nil {
		return upFile{}, err
	}
	if err := os.Remove(pendingPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return upFile{}, err
	}
	return up, nil
}

// upCluster finds the cluster of an earlier `coffer up`, or creates it: in
// FIPS mode (hsm2m.medium) if fips. A cluster found keeps its mode; asked
// for the other one, it is an error.
func upCluster(ctx context.Context, api *apiClient, fips bool) (controlplane.Cluster, error) {
	var out controlplane.DescribeClustersResponse
	if err := api.call(ctx, "DescribeClusters", controlplane.DescribeClustersRequest{}, &out); err != nil {
		return controlplane.Cluster{}, err
	}
	for _, c := range out.Clusters {
		if c.State != controlplane.ClusterDeleted && c.State != controlplane.ClusterDeleteInProgress &&
			slices.Contains(c.TagList, controlplane.Tag{Key: upTagKey, Value: "true"}) {
			if fips && c.Mode != "FIPS" {
				return c, fmt.Errorf("the cluster of this data directory (%s) is not in FIPS mode; --fips makes a new one only: use another --data-dir (or leave --fips out)", c.ClusterId)
			}
			return c, nil
		}
	}
	region := controlplane.DefaultRegion(upRegion, 0)
	var created controlplane.CreateClusterResponse
	req := controlplane.CreateClusterRequest{
		HsmType: "hsm1.medium", SubnetIds: []string{region.Subnets[0].ID, region.Subnets[1].ID},
		TagList: []controlplane.Tag{{Key: upTagKey, Value: "true"}, {Key: "Name", Value: "coffer-up"}},
	}
	if fips {
		req.HsmType, req.Mode = "hsm2m.medium", "FIPS"
	}
	err := api.call(ctx, "CreateCluster", req, &created)
	return created.Cluster, err
}

// upCustomerCA makes (once) the customer CA of DIR/customerCA.{crt,key}.
func upCustomerCA(dir string, stderr io.Writer) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, "customerCA.crt"), filepath.Join(dir, "customerCA.key")
	if err := keepPrivateSay(keyPath, stderr); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	if err := pki.NewCustomerCAFiles(certPath, keyPath, "Coffer up customer CA", time.Now().AddDate(10, 0, 0)); err != nil {
		return nil, nil, err
	}
	return pki.LoadCustomerCA(certPath, keyPath)
}

// activate: the pre-admin sets the admin password, then creates the crypto
// user. An admin already activated (an interrupted earlier run) logs in
// with the recorded password instead.
func activate(ctx context.Context, file client.File, up upFile) error {
	cfg, err := file.Config(nil)
	if err != nil {
		return err
	}
	cfg.ReconnectAttempts = 0
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.Login(ctx, "admin", "admin", "password")
	if err == nil {
		err = s.Activate(ctx, up.Admin.Password)
	} else {
		s, err = c.Login(ctx, "admin", up.Admin.Username, up.Admin.Password)
	}
	if err != nil {
		return fmt.Errorf("activate the cluster: %w", err)
	}
	defer s.Close(ctx)
	users, err := s.ListUsers(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(users, func(u client.UserInfo) bool { return u.Username == up.CryptoUser.Username }) {
		// The activation reaches the other HSMs by sync, a moment later: an
		// HSM that has not seen it yet refuses with USER_PIN_NOT_INITIALIZED.
		err := retryWhile(ctx, 30*time.Second, func() error {
			return s.CreateUser(ctx, up.CryptoUser.Username, "crypto-user", up.CryptoUser.Password, nil)
		}, func(err error) bool { return client.Code(err) == ck.CKR_USER_PIN_NOT_INITIALIZED })
		if err != nil {
			return fmt.Errorf("create the crypto user: %w", err)
		}
		// It too reaches the other HSMs by sync: up.json is written (and a
		// script logs in) only once every HSM knows it.
		if err := waitUserEverywhere(ctx, file, up.CryptoUser); err != nil {
			return err
		}
	}
	return nil
}

// waitUserEverywhere waits until u, just created, logs in on every HSM of
// file. An HSM that has not seen the user yet says CKR_PIN_INCORRECT (as
// for any unknown user, counting no failure) or, not yet activated,
// CKR_USER_PIN_NOT_INITIALIZED.
func waitUserEverywhere(ctx context.Context, file client.File, u upUser) error {
	for _, addr := range file.HSMs {
		cfg, err := file.Config(nil)
		if err != nil {
			return err
		}
		cfg.HSMs, cfg.ReconnectAttempts = []string{addr}, 0
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			return err
		}
		err = retryWhile(ctx, 30*time.Second, func() error {
			s, err := c.Login(ctx, "crypto-user", u.Username, u.Password)
			if err == nil {
				s.Close(ctx)
			}
			return err
		}, func(err error) bool {
			code := client.Code(err)
			return code == ck.CKR_PIN_INCORRECT || code == ck.CKR_USER_PIN_NOT_INITIALIZED
		})
		c.Close()
		if err != nil {
			return fmt.Errorf("the crypto user on HSM %s: %w", addr, err)
		}
	}
	return nil
}

// waitNodes waits until every HSM of file answers and says it is ready
// (after a restart the records say ACTIVE before the nodes are back).
func waitNodes(ctx context.Context, file client.File) error {
	cfg, err := file.Config(nil)
	if err != nil {
		return err
	}
	cfg.ReconnectAttempts = 0
	notReady := errors.New("not every HSM is ready")
	return retryWhile(ctx, upWait, func() error {
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			return fmt.Errorf("%w: %w", notReady, err)
		}
		defer c.Close()
		for _, st := range c.ClusterInfo(ctx) {
			if st.Err != nil || st.Info == nil || !st.Info.Ready {
				return fmt.Errorf("%w: HSM %s: %v", notReady, st.Address, st.Err)
			}
		}
		return nil
	}, func(err error) bool { return errors.Is(err, notReady) })
}

// retryWhile calls fn until it succeeds, fails otherwise than again says,
// or d has passed.
func retryWhile(ctx context.Context, d time.Duration, fn func() error, again func(error) bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		err := fn()
		if err == nil || !again(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}

func waitCluster(ctx context.Context, api *apiClient, id, what string, done func(controlplane.Cluster) bool) (controlplane.Cluster, error) {
	ctx, cancel := context.WithTimeout(ctx, upWait)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		var out controlplane.DescribeClustersResponse
		err := api.call(ctx, "DescribeClusters", controlplane.DescribeClustersRequest{Filters: map[string][]string{"clusterIds": {id}}}, &out)
		if err == nil && len(out.Clusters) == 1 && done(out.Clusters[0]) {
			return out.Clusters[0], nil
		}
		select {
		case <-ctx.Done():
			state := ""
			if len(out.Clusters) == 1 {
				b, _ := json.Marshal(out.Clusters[0].Hsms)
				state = fmt.Sprintf(" (state %s %s; HSMs %s)", out.Clusters[0].State, out.Clusters[0].StateMessage, b)
			}
			return controlplane.Cluster{}, fmt.Errorf("waiting for cluster %s to be %s%s: %w", id, what, state, errors.Join(ctx.Err(), err))
		case <-t.C:
		}
	}
}

// printUpUsage says how to use the cluster and where its secrets are; it
// prints no secret (the AWS secret key and the passwords stay in up.json).
func printUpUsage(w io.Writer, up upFile, upPath string) {
	printUpUsageHow(w, up, upPath, "Ctrl-C stops it; run again to resume")
}

// printUpUsageHow is printUpUsage saying how it runs (how to stop it).
func printUpUsageHow(w io.Writer, up upFile, upPath, how string) {
	q := shellQuote(upPath)
	fmt.Fprintf(w, `Coffer is up: cluster %[1]s with HSMs %[2]s (%[11]s).
Everything is in %[3]s (mode 0600): the AWS secret access key and the admin's and
crypto user's passwords are there, not printed.

AWS CLI:
  export AWS_ACCESS_KEY_ID=%[4]s AWS_DEFAULT_REGION=%[5]s
  export AWS_SECRET_ACCESS_KEY="$(jq -r .secret_access_key %[6]s)"
  aws cloudhsmv2 describe-clusters --endpoint-url %[7]s

PKCS#11 (pkcs11-tool from OpenSC):
  export COFFER_PKCS11_CONFIG=%[8]s
  pkcs11-tool --module %[9]s --login --pin "%[10]s:$(jq -r .crypto_user.password %[6]s)" --keygen --key-type AES:32 --label my-key

Coffer CLI:
  %[12]s cli --cluster-config %[8]s
  (login --username %[10]s --role crypto-user asks for the crypto_user.password of up.json)
`, up.ClusterID, strings.Join(up.HSMAddresses, ", "), upPath, up.AccessKeyID, up.Region, q,
		up.Endpoint, shellQuote(up.PKCS11Config), shellQuote(up.PKCS11Module), up.CryptoUser.Username, how, shellQuote(runningBinary()))
}

// runningBinary is the absolute path of this coffer binary, so that a line
// printed with it can be pasted from any directory.
func runningBinary() string {
	if exe, err := cofferExecutable(); err == nil {
		return exe
	}
	return "coffer"
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:=@%,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func randomPassword() string {
	const chars = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 20)
	rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

func writeJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFileAll(path, append(b, '\n'), mode)
}

// apiClient calls the control plane as an SDK does (SigV4-signed AWS JSON).
type apiClient struct {
	endpoint, region string
	cred             controlplane.Credential
	http             http.Client
}

func (a *apiClient) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", controlplane.TargetPrefix+op)
	controlplane.SignRequest(req, body, a.cred, a.region, time.Now())
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<22))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		json.Unmarshal(b, &e)
		return fmt.Errorf("%s: %s: %s", op, e.Type, e.Message)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// absOrEmpty makes a path absolute, leaving "" as it is.
func absOrEmpty(path string) string {
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
