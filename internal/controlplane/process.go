package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coffer-hsm/coffer/internal/durable"

	"github.com/coffer-hsm/coffer/internal/pki"
)

// Processes is the embedded default Provisioner: every HSM is a child
// `coffer hsm run` process listening on its own loopback address, in its
// own process group (so a terminal's Ctrl-C reaches only the control
// plane, which stops the nodes deliberately or leaves them running).
//
// The HSM side lives under Dir, which the control plane's own code never
// reads:
//
//	Dir/<region>/<cluster-id>/cluster.key    the cluster key (0600), made by `coffer hsm cluster-key`,
//	                                         sealed under the sealing key (never a plaintext PEM)
//	Dir/<region>/<cluster-id>/cluster.csr    its CSR
//	Dir/<region>/<cluster-id>/<hsm-id>/      one HSM: hsm.json, node.key.pem (0600), node.crt,
//	                                         cluster.crt, customerCA.crt, data/ (its store), hsm.log, node.pid,
//	                                         restore.blob (the first HSM of a cluster made from a backup, until it runs)
//	Dir/backup.key                           the fleet backup key (0600; BackupKeyPath), named in every hsm.json
//
// The sealing key (SealingKeyPath, 0600) is the control plane's: it lives
// outside Dir and reaches the HSM-side tools on their stdin, never in a
// command line. Reading the cluster's directory alone (a copy, a backup of
// it) does not give the cluster key, nor does the control plane's own
// directory alone.
//
// The cluster key is cluster-scoped, so deleting and replacing the first
// HSM before initialization keeps the ClusterCsr. It is a 0600 file: on one
// machine the HSM side and the control plane share a filesystem, and the
// boundary is what each program opens. An agent on another host would keep
// this directory there.
//
// Nodes survive a control-plane restart: each node's pid is in node.pid
// and a new Processes adopts a live process whose command line names that
// HSM's config file.
type Processes struct {
	cfg  ProcessesConfig
	log  *slog.Logger
	http *http.Client

	mu    sync.Mutex // guards procs; held across a start or stop of one node
	procs map[string]*proc

	sealingKey []byte // seals the cluster keys under Dir; given to the tools on stdin
}

// ProcessesConfig configures Processes.
type ProcessesConfig struct {
	Dir        string // the HSM side's directory
	Executable string // the coffer binary (`coffer hsm ...`)
	// SealingKeyPath is the file (0600, created if missing) of the key the
	// cluster keys are sealed under; it must be outside Dir.
	SealingKeyPath string
	// BackupKeyPath is the fleet backup key (32 bytes, 0600) every node's
	// hsm.json names; empty: Dir/backup.key. NewProcesses has the HSM-side
	// tool create it if missing; the control plane's own code never opens it.
	BackupKeyPath string
	StopTimeout   time.Duration // SIGTERM to SIGKILL (zero: 10s)
	Logger        *slog.Logger
	// TestPasswordCost writes test_password_cost into every hsm.json: the
	// cheap password-hash cost of Coffer's own tests, which `coffer hsm
	// run` refuses outside its test binary.
	TestPasswordCost bool
}

type proc struct {
	dir    string // the HSM's directory
	pid    int
	child  bool   // started by this process (Wait4 reaps it)
	config []byte // the configuration it runs with
}

// NewProcesses returns the process provisioner.
func NewProcesses(cfg ProcessesConfig) (*Processes, error) {
	if cfg.Dir == "" || cfg.Executable == "" || cfg.SealingKeyPath == "" {
		return nil, errors.New("controlplane: processes: Dir, Executable and SealingKeyPath are required")
	}
	if rel, err := filepath.Rel(cfg.Dir, cfg.SealingKeyPath); err == nil && !strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("controlplane: processes: the sealing key %s must be outside the HSM side's directory %s", cfg.SealingKeyPath, cfg.Dir)
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.BackupKeyPath == "" {
		cfg.BackupKeyPath = filepath.Join(cfg.Dir, "backup.key")
	}
	// Nodes run in their own directories: every path they are given is absolute.
	if abs, err := filepath.Abs(cfg.BackupKeyPath); err == nil {
		cfg.BackupKeyPath = abs
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	sk, err := pki.SealingKeyFile(cfg.SealingKeyPath, true)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	p := &Processes{cfg: cfg, log: cfg.Logger, procs: map[string]*proc{}, sealingKey: sk,
		http: &http.Client{Timeout: 2 * time.Second}}
	// Made once per deployment, by the HSM side's tool: the control plane
	// only names the file.
	if _, err := p.runTool(context.Background(), "hsm", "backup-key", "--create", cfg.BackupKeyPath); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	return p, nil
}

// SealClusterKeys seals every cluster key an older Coffer left in the
// clear under Dir (`coffer hsm seal-cluster-key`; sealed keys are left as
// they are). Call it once at start.
func (p *Processes) SealClusterKeys(ctx context.Context) error {
	keys, err := filepath.Glob(filepath.Join(p.cfg.Dir, "*", "*", "cluster.key"))
	if err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	for _, k := range keys {
		if _, err := p.runTool(ctx, "hsm", "seal-cluster-key", "--dir", filepath.Dir(k), "--sealing-key", "-"); err != nil {
			return fmt.Errorf("controlplane: %w", err)
		}
	}
	return nil
}

func (p *Processes) clusterDir(ref ClusterRef) string {
	return filepath.Join(p.cfg.Dir, ref.Region, ref.ClusterID)
}

func (p *Processes) hsmDir(ref HSMRef) string {
	return filepath.Join(p.clusterDir(ref.ClusterRef), ref.HsmID)
}

// ClusterKey runs `coffer hsm cluster-key` in the cluster's directory.
func (p *Processes) ClusterKey(ctx context.Context, ref ClusterRef, hsmID string) (ClusterKeyResult, error) {
	out, err := p.runTool(ctx, "hsm", "cluster-key", "--dir", p.clusterDir(ref), "--cluster-id", ref.ClusterID, "--hsm-id", hsmID, "--sealing-key", "-")
	if err != nil {
		return ClusterKeyResult{}, err
	}
	var res struct {
		ClusterCSR     string `json:"cluster_csr"`
		HsmCertificate string `json:"hsm_certificate"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.ClusterCSR == "" {
		return ClusterKeyResult{}, fmt.Errorf("coffer hsm cluster-key: unexpected output %q", truncate(string(out), 200))
	}
	return ClusterKeyResult{ClusterCSR: res.ClusterCSR, HsmCertificate: res.HsmCertificate}, nil
}

func (p *Processes) runTool(ctx context.Context, args ...string) ([]byte, error) {
	return p.runToolFor(ctx, time.Minute, args...)
}

// toolError is a tool that failed: its error and what it said on stderr.
type toolError struct {
	args   []string
	err    error
	stderr string
}

func (e *toolError) Error() string {
	return fmt.Sprintf("coffer %s: %v: %s", strings.Join(e.args[:2], " "), e.err, truncate(e.stderr, 500))
}

func (e *toolError) Unwrap() error { return e.err }

// runToolFor runs an HSM-side tool for at most timeout, the sealing key on
// its stdin; a failure is a *toolError.
func (p *Processes) runToolFor(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.cfg.Executable, args...)
	cmd.Stdin = bytes.NewReader(pki.EncodeSealingKey(p.sealingKey))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &toolError{args: args, err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return out, nil
}

// nodeFile is the node's configuration file, the format `coffer hsm run`
// reads (cmd/coffer/hsmconfig.go).
type nodeFile struct {
	DataDir       string `json:"data_dir"`
	Listen        string `json:"listen"`
	MetricsListen string `json:"metrics_listen,omitempty"`
	NodeID        uint32 `json:"node_id"`
	ClusterID     string `json:"cluster_id"`
	// CertificateClusterID: the cluster certificate's CommonName, when it
	// is not ClusterID (certificateClusterID).
	CertificateClusterID string     `json:"certificate_cluster_id,omitempty"`
	HSMID                string     `json:"hsm_id"`
	Certificate          string     `json:"certificate"`
	PrivateKey           string     `json:"private_key"`
	ClusterCertificate   string     `json:"cluster_certificate"`
	TrustAnchor          string     `json:"trust_anchor"`
	Peers                []nodePeer `json:"peers"`
	MaskingKey           string     `json:"masking_key"`
	FIPS                 bool       `json:"fips,omitempty"`
	BackupKey            string     `json:"backup_key,omitempty"`
	RestoreBlob          string     `json:"restore_blob,omitempty"`
	RestoreBackupID      string     `json:"restore_backup_id,omitempty"`
	TestPasswordCost     bool       `json:"test_password_cost,omitempty"`
}

// certificateClusterID is the cluster id the HSM's cluster certificate
// names (its CommonName) when it is not the HSM's own: a cluster restored
// from a backup keeps the cluster certificate of the cluster that was
// initialized (so the customer signs nothing again) and serves under its
// own id, its node certificates naming that id under the certificate.
// Empty when they are equal, or when the certificate does not parse (the
// node refuses it, saying why).
func certificateClusterID(spec NodeSpec) string {
	if spec.ClusterCertificate == "" {
		return ""
	}
	cert, err := pki.DecodeCertificatePEM([]byte(spec.ClusterCertificate), "cluster certificate")
	if err != nil || cert.Subject.CommonName == spec.ClusterID {
		return ""
	}
	return cert.Subject.CommonName
}

type nodePeer struct {
	ID      uint32 `json:"id"`
	HSMID   string `json:"hsm_id"`
	Address string `json:"address"`
}

const configName = "hsm.json"

// Ensure implements Provisioner.
func (p *Processes) Ensure(ctx context.Context, spec NodeSpec, allowRestart bool) (NodeStatus, error) {
	dir := p.hsmDir(spec.HSMRef)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return NodeStatus{}, err
	}
	for name, content := range map[string]string{"cluster.crt": spec.ClusterCertificate, "customerCA.crt": spec.TrustAnchor} {
		if err := writeIfChanged(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return NodeStatus{}, err
		}
	}
	if !fileExists(filepath.Join(dir, "node.crt")) {
		_, err := p.runTool(ctx, "hsm", "issue-cert", "--cluster-dir", p.clusterDir(spec.ClusterRef),
			"--cluster-cert", filepath.Join(dir, "cluster.crt"), "--cluster-id", spec.ClusterID, "--hsm-id", spec.HsmID, "--ip", spec.IP, "--out", dir, "--sealing-key", "-")
		if err != nil {
			return NodeStatus{}, err
		}
	}
	f := nodeFile{
		DataDir: filepath.Join(dir, "data"), Listen: net.JoinHostPort(spec.IP, strconv.Itoa(spec.Port)),
		MetricsListen: net.JoinHostPort(spec.IP, strconv.Itoa(spec.MetricsPort)), NodeID: spec.NodeID,
		ClusterID: spec.ClusterID, CertificateClusterID: certificateClusterID(spec), HSMID: spec.HsmID, Certificate: filepath.Join(dir, "node.crt"),
		PrivateKey: filepath.Join(dir, "node.key.pem"), ClusterCertificate: filepath.Join(dir, "cluster.crt"),
		TrustAnchor: filepath.Join(dir, "customerCA.crt"), Peers: []nodePeer{}, MaskingKey: spec.MaskingKey, FIPS: spec.FIPS,
		BackupKey: p.cfg.BackupKeyPath, TestPasswordCost: p.cfg.TestPasswordCost,
	}
	if spec.Restore != nil {
		if err := p.writeRestoreBlob(ctx, dir, spec.Restore); err != nil {
			return NodeStatus{}, err
		}
		f.RestoreBlob, f.RestoreBackupID = filepath.Join(dir, restoreBlobName), spec.Restore.BoundID
	}
	for _, peer := range spec.Peers {
		f.Peers = append(f.Peers, nodePeer{ID: peer.NodeID, HSMID: peer.HsmID, Address: peer.Addr})
	}
	config, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return NodeStatus{}, err
	}
	config = append(config, '\n')

	key := dir
	p.mu.Lock()
	defer p.mu.Unlock()
	var st NodeStatus
	pr := p.procs[key]
	if pr == nil {
		pr = p.adopt(dir)
		if pr == nil && fileExists(filepath.Join(dir, "node.pid")) {
			st.Restarted = true // it ran, and died while nobody watched
		}
		if pr != nil {
			p.procs[key] = pr // watched, restarted and stopped like a child from now on
		}
	}
	if pr != nil && !pr.alive(dir) {
		p.log.Warn("HSM node exited; restarting", "hsm", spec.HsmID, "pid", pr.pid)
		delete(p.procs, key)
		pr, st.Restarted = nil, true
	}
	if pr != nil && !bytes.Equal(pr.config, config) {
		if !allowRestart {
			st.Running, st.PendingRestart = true, true
			st.Ready = p.ready(ctx, spec)
			return st, nil
		}
		p.log.Info("restarting HSM node with a new configuration", "hsm", spec.HsmID, "pid", pr.pid)
		p.stop(pr)
		delete(p.procs, key)
		pr = nil
	}
	if pr == nil {
		if err := writeIfChanged(filepath.Join(dir, configName), config, 0o600); err != nil {
			return st, err
		}
		if pr, err = p.start(dir); err != nil {
			return st, err
		}
		pr.config = config
		p.procs[key] = pr
		p.log.Info("HSM node started", "hsm", spec.HsmID, "pid", pr.pid, "listen", f.Listen)
	}
	st.Running = true
	st.Ready = p.ready(ctx, spec)
	if !st.Ready {
		st.Message = "The HSM's node is starting or catching up with its peers; its log: " + filepath.Join(dir, "hsm.log")
	}
	return st, nil
}

func (p *Processes) start(dir string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(dir, "hsm.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(p.cfg.Executable, "hsm", "run", "--config", filepath.Join(dir, configName))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start HSM node: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release() // reaped with Wait4 in alive, or adopted by the next control plane
	if err := os.WriteFile(filepath.Join(dir, "node.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		p.log.Error("write pid file", "dir", dir, "err", err)
	}
	return &proc{dir: dir, pid: pid, child: true}, nil
}

// adopt finds a node left running by an earlier control plane.
func (p *Processes) adopt(dir string) *proc {
	b, err := os.ReadFile(filepath.Join(dir, "node.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil
	}
	pr := &proc{dir: dir, pid: pid}
	if !pr.alive(dir) {
		return nil
	}
	pr.config, _ = os.ReadFile(filepath.Join(dir, configName))
	p.log.Info("adopted a running HSM node", "dir", dir, "pid", pid)
	return pr
}

// alive reports whether the node process still runs: a child is reaped
// with Wait4; an adopted process must still be `coffer hsm run` of dir.
func (pr *proc) alive(dir string) bool {
	if pr.child {
		var ws syscall.WaitStatus
		n, err := syscall.Wait4(pr.pid, &ws, syscall.WNOHANG, nil)
		switch {
		case err == nil && n == pr.pid:
			return false
		case err == nil:
			return true
		}
	}
	if err := syscall.Kill(pr.pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pr.pid))
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte(filepath.Join(dir, configName)))
}

// stop sends SIGTERM to the node's process group, then SIGKILL after
// StopTimeout, and waits until it is gone (p.mu held).
func (p *Processes) stop(pr *proc) {
	gone := func() bool { return !pr.alive(pr.dir) }
	syscall.Kill(-pr.pid, syscall.SIGTERM)
	if waitUntil(gone, p.cfg.StopTimeout) {
		return
	}
	p.log.Warn("HSM node did not stop; killing it", "pid", pr.pid)
	syscall.Kill(-pr.pid, syscall.SIGKILL)
	waitUntil(gone, 5*time.Second)
}

// waitUntil polls cond until it holds or d passed.
func waitUntil(cond func() bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-t.C
	}
}

// ready reports whether the node's /readyz answers 200.
func (p *Processes) ready(ctx context.Context, spec NodeSpec) bool {
	ok, _ := p.getMetricsPort(ctx, spec, "/readyz", func(io.Reader) (bool, error) { return true, nil })
	return ok
}

// Activated implements Provisioner by asking the node: its metrics say
// whether its copy of the cluster settings is activated
// (coffer_cluster_activated, beside NodeInfo's activated). A node that does
// not answer has not shown it.
func (p *Processes) Activated(ctx context.Context, spec NodeSpec) (bool, error) {
	return p.getMetricsPort(ctx, spec, "/metrics", func(body io.Reader) (bool, error) {
		return metricIsOne(body, "coffer_cluster_activated")
	})
}

// getMetricsPort GETs path from the node's metrics port and, on a 200,
// reports what read says of the body (at most 4 MiB of it). A node with no
// metrics port, or one that does not answer 200, gives false and no error.
func (p *Processes) getMetricsPort(ctx context.Context, spec NodeSpec, path string, read func(io.Reader) (bool, error)) (bool, error) {
	if spec.MetricsPort == 0 {
		return false, nil
	}
	url := "http://" + net.JoinHostPort(spec.IP, strconv.Itoa(spec.MetricsPort)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return false, nil
	}
	defer resp.Body.Close()
	defer io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<20)) // the connection is reused
	if resp.StatusCode != http.StatusOK {
		return false, nil
	}
	return read(io.LimitReader(resp.Body, 4<<20))
}

// metricIsOne reports whether the Prometheus text exposition r has the
// sample `name 1`.
func metricIsOne(r io.Reader, name string) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strings.TrimSpace(v) == "1", nil
		}
	}
	return false, sc.Err()
}

// RemoveHSM implements Provisioner.
func (p *Processes) RemoveHSM(ctx context.Context, ref HSMRef) error {
	dir := p.hsmDir(ref)
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.procs[dir]
	if pr == nil {
		pr = p.adopt(dir)
	}
	if pr != nil {
		p.stop(pr)
		delete(p.procs, dir)
	}
	return os.RemoveAll(dir)
}

// RemoveCluster implements Provisioner.
func (p *Processes) RemoveCluster(ctx context.Context, ref ClusterRef) error {
	return os.RemoveAll(p.clusterDir(ref))
}

// Close implements Provisioner.
func (p *Processes) Close(ctx context.Context, stopNodes bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !stopNodes {
		return nil
	}
	var wg sync.WaitGroup
	for _, pr := range p.procs {
		wg.Go(func() { p.stop(pr) })
	}
	wg.Wait()
	clear(p.procs)
	return nil
}

func writeIfChanged(path string, data []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return durable.WriteFile(path, data, mode)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
