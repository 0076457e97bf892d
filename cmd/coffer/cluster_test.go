package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/pki"
)

// The cluster tests run real `coffer hsm` processes: this test binary,
// executed through a symlink named "coffer" (TestMain hands it to run), one
// process per HSM, each on its own loopback address 127.0.0.1N. They are
// killed, restarted and cut off from each other while a client works.

// clusterWaitLimit bounds every wait of the cluster tests; nothing here should
// come close to it.
const clusterWaitLimit = 30 * time.Second

const (
	localClusterID = "cluster-local"
	testAdminPW    = "admin-password-1"
	testCU         = "alice"
	testCUPW       = "alice-password-1"
)

// loopbackOf is the loopback address of HSM id.
func loopbackOf(id uint32) string { return fmt.Sprintf("127.0.0.%d", 10+id) }

// freeLoopbackPort finds a free port on ip. The port is closed again before the HSM
// binds it; another process could take it in between, which on a test
// machine does not happen in practice.
func freeLoopbackPort(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// testCluster is a cluster directory made by `coffer hsm init` and the HSM
// processes running from it.
type testCluster struct {
	t      testing.TB
	dir    string // the init directory
	bin    string // the coffer executable (a symlink to this test binary)
	logs   string // node logs, one file per HSM, kept across restarts
	anchor *x509.Certificate

	mu    sync.Mutex
	addrs map[uint32]string
	procs map[uint32]*hsmProc
}

// newCluster runs `coffer hsm init` for HSMs ids on fresh ports. On failure
// it logs the tail of every node's log; at the end it checks that no node
// reported a data race.
func newCluster(t testing.TB, ids ...uint32) *testCluster {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the HSMs need their own loopback addresses (127.0.0.11, ...), which only Linux routes without setup")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	bin := filepath.Join(binDir, "coffer")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	c := &testCluster{
		t: t, dir: filepath.Join(t.TempDir(), "cluster"), bin: bin, logs: t.TempDir(),
		addrs: map[uint32]string{}, procs: map[uint32]*hsmProc{},
	}
	// Registered first, so they run last: after the clients have closed.
	t.Cleanup(c.report)
	t.Cleanup(c.stopAll)
	c.init(t, ids...)
	anchorPEM, err := os.ReadFile(filepath.Join(c.dir, "customerCA.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if c.anchor, err = pki.DecodeCertificatePEM(anchorPEM, "customer CA"); err != nil {
		t.Fatal(err)
	}
	return c
}

// init runs `coffer hsm init` with HSMs ids added (on fresh ports).
func (c *testCluster) init(t testing.TB, ids ...uint32) {
	t.Helper()
	// Tests fail logins on purpose: a short fixed pause keeps the per-address
	// pacing (tested in internal/node) out of their way.
	args := []string{"hsm", "init", "--dir", c.dir, "--login-failure-delay", "1ms"}
	c.mu.Lock()
	for _, id := range ids {
		c.addrs[id] = net.JoinHostPort(loopbackOf(id), strconv.Itoa(freeLoopbackPort(t, loopbackOf(id))))
		args = append(args, "--node", fmt.Sprintf("%d=%s", id, c.addrs[id]))
	}
	c.mu.Unlock()
	out, err := exec.Command(c.bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("coffer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (c *testCluster) addr(id uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[id]
}

func (c *testCluster) configPath(id uint32) string {
	return filepath.Join(c.dir, fmt.Sprintf("hsm-%d.json", id))
}

// editConfig rewrites HSM id's config file.
func (c *testCluster) editConfig(t testing.TB, id uint32, edit func(*hsmFile)) {
	t.Helper()
	f, err := readRawHSMFile(c.configPath(id))
	if err != nil {
		t.Fatal(err)
	}
	edit(f)
	writeTestHSMFile(t, c.configPath(id), f)
}

func writeTestHSMFile(t testing.TB, path string, f *hsmFile) {
	t.Helper()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hsmProc is one `coffer hsm run` process.
type hsmProc struct {
	id      uint32
	cmd     *exec.Cmd
	logPath string
	offset  int64         // where this run's output starts in the log
	done    chan struct{} // closed once the process has exited
	err     error         // cmd.Wait's result, after done
}

func (p *hsmProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start runs HSM id from its config file (restarting it if it ran before).
func (c *testCluster) start(t testing.TB, id uint32) *hsmProc {
	t.Helper()
	return c.startConfig(t, id, c.configPath(id))
}

// startConfig runs HSM id from config. The process is stopped at the end of
// the test if it still runs (stopAll).
func (c *testCluster) startConfig(t testing.TB, id uint32, config string) *hsmProc {
	t.Helper()
	c.mu.Lock()
	old := c.procs[id]
	c.mu.Unlock()
	if old != nil && !old.exited() {
		t.Fatalf("HSM %d is still running", id)
	}
	logPath := filepath.Join(c.logs, fmt.Sprintf("hsm-%d.log", id))
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	fi, err := log.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(log, "=== test: coffer hsm run --config %s\n", config)
	p := &hsmProc{id: id, logPath: logPath, offset: fi.Size(), done: make(chan struct{})}
	p.cmd = exec.Command(c.bin, "hsm", "run", "--config", config)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = hsmProcAttr()
	// The race detector waits a second at exit by default; a test stops
	// many nodes.
	p.cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=100"))
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends with the process; stopAll and kill wait for it
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[id] = p
	c.mu.Unlock()
	return p
}

// stopAll stops every HSM still running, at once.
func (c *testCluster) stopAll() {
	c.mu.Lock()
	procs := slices.Collect(maps.Values(c.procs))
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { c.stopProc(c.t, p) })
	}
	wg.Wait()
}

// stopProc ends p: SIGTERM, then SIGKILL if it has not stopped in time. A
// node that does not stop cleanly on SIGTERM fails the test.
func (c *testCluster) stopProc(t testing.TB, p *hsmProc) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("HSM %d: exit after SIGTERM: %v", p.id, p.err)
		}
	case <-time.After(clusterWaitLimit):
		t.Errorf("HSM %d did not stop within %s of SIGTERM; killed", p.id, clusterWaitLimit)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop stops HSM id gracefully and waits for it.
func (c *testCluster) stop(t testing.TB, id uint32) {
	t.Helper()
	c.stopProc(t, c.proc(t, id))
}

// kill sends SIGKILL to HSM id and waits until it is gone.
func (c *testCluster) kill(t testing.TB, id uint32) {
	t.Helper()
	p := c.proc(t, id)
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (c *testCluster) proc(t testing.TB, id uint32) *hsmProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[id]
	if p == nil {
		t.Fatalf("HSM %d was never started", id)
	}
	return p
}

// output is what HSM id's current run has written so far.
func (c *testCluster) output(t testing.TB, id uint32) string {
	p := c.proc(t, id)
	b, err := os.ReadFile(p.logPath)
	if err != nil || int64(len(b)) < p.offset {
		return ""
	}
	return string(b[p.offset:])
}

var hsmListeningRE = regexp.MustCompile(`msg="HSM listening".* metrics=(\S+)`)

// metricsAddr is the metrics address HSM id's current run logged, "" if it
// has not logged it yet.
func (c *testCluster) metricsAddr(t testing.TB, id uint32) string {
	m := hsmListeningRE.FindStringSubmatch(c.output(t, id))
	if m == nil {
		return ""
	}
	return m[1]
}

// metricValue reads one unlabelled gauge from HSM id's /metrics.
func (c *testCluster) metricValue(t testing.TB, id uint32, name string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + c.metricsAddr(t, id) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(body.String()) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("HSM %d: no metric %s", id, name)
	return 0
}

// waitReady waits until HSM id's /readyz answers 200 and returns how long
// that took from now.
func (c *testCluster) waitReady(t testing.TB, id uint32) time.Duration {
	t.Helper()
	return pollUntil(t, fmt.Sprintf("HSM %d ready", id), func() error { return c.readyErr(t, id) })
}

// readyErr says why HSM id is not ready, nil if it is.
func (c *testCluster) readyErr(t testing.TB, id uint32) error {
	p := c.proc(t, id)
	if p.exited() {
		return fmt.Errorf("exited: %v", p.err)
	}
	addr := c.metricsAddr(t, id)
	if addr == "" {
		return errors.New(`no "HSM listening" line yet`)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s: %s", resp.Status, strings.TrimSpace(body.String()))
	}
	return nil
}

// startAll starts HSMs ids at once and waits until each is ready.
func (c *testCluster) startAll(t testing.TB, ids ...uint32) {
	t.Helper()
	for _, id := range ids {
		c.start(t, id)
	}
	for _, id := range ids {
		c.waitReady(t, id)
	}
}

// report runs at the very end: it fails the test if a node reported a data
// race and, if the test failed, shows the end of every node's log.
func (c *testCluster) report() {
	c.mu.Lock()
	procs := maps.Clone(c.procs)
	c.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(procs)) {
		b, err := os.ReadFile(procs[id].logPath)
		if err != nil {
			continue
		}
		if i := bytes.Index(b, []byte("WARNING: DATA RACE")); i >= 0 {
			c.t.Errorf("HSM %d reported a data race:\n%s", id, b[i:min(len(b), i+6000)])
		}
		if c.t.Failed() {
			c.t.Logf("--- HSM %d log (%s), last lines:\n%s", id, procs[id].logPath, logTail(b, 40))
		}
	}
}

func logTail(b []byte, lines int) string {
	i := len(b)
	for n := 0; n <= lines && i > 0; n++ {
		i = bytes.LastIndexByte(b[:i], '\n')
		if i < 0 {
			i = 0
		}
	}
	return string(b[i:])
}

// pollUntil polls cond until it returns nil and returns how long that
// took; after clusterWaitLimit it fails the test with cond's last error.
func pollUntil(t testing.TB, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > clusterWaitLimit {
			t.Fatalf("timed out after %s waiting for %s: %v", clusterWaitLimit, what, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// dial is a client of the given HSMs of the cluster.
func (c *testCluster) dial(t testing.TB, minNodes int, ids ...uint32) *client.Cluster {
	t.Helper()
	return c.dialConfig(t, c.clientConfig(minNodes, ids...))
}

func (c *testCluster) dialConfig(t testing.TB, cfg client.Config) *client.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clusterWaitLimit)
	defer cancel()
	cl, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial HSMs %v: %v", cfg.HSMs, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// logBuffer collects a logger's output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (c *testCluster) clientConfig(minNodes int, ids ...uint32) client.Config {
	var addrs []string
	for _, id := range ids {
		addrs = append(addrs, c.addr(id))
	}
	trust := pki.Trust{TrustAnchor: c.anchor, ClusterID: localClusterID}
	return client.Config{
		HSMs:                     addrs,
		TLS:                      func(host string) (*tls.Config, error) { return pki.ClusterClientConfig(trust, host) },
		CreateObjectMinimumNodes: minNodes,
		ReconnectInterval:        100 * time.Millisecond,
		ReconnectAttempts:        client.ReconnectForever,
	}
}

// loginT logs in to cl; the session is closed at the end of the test.
func loginT(t testing.TB, cl *client.Cluster, role, user, password string) *client.Session {
	t.Helper()
	s, err := cl.Login(t.Context(), role, user, password)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	t.Cleanup(func() { _ = s.Close(context.WithoutCancel(t.Context())) })
	return s
}

// loginOnce logs in and out again; it returns the login's error.
func loginOnce(ctx context.Context, cl *client.Cluster, role, user, password string) error {
	s, err := cl.Login(ctx, role, user, password)
	if err != nil {
		return err
	}
	return s.Close(ctx)
}

// activate has the pre-admin activate the cluster through HSM id and create
// the crypto user alice; it returns the admin's session there.
func (c *testCluster) activate(t testing.TB, id uint32) *client.Session {
	t.Helper()
	s := loginT(t, c.dial(t, 1, id), "admin", hsm.DefaultAdminName, hsm.DefaultPreAdminPIN)
	if err := s.Activate(t.Context(), testAdminPW); err != nil {
		t.Fatalf("activate: %v", err)
	}
	if err := s.CreateUser(t.Context(), testCU, "crypto-user", testCUPW, nil); err != nil {
		t.Fatalf("create %s: %v", testCU, err)
	}
	return s
}

// loginWhenKnown logs in as user on a client of HSM id alone, waiting until
// the user has reached that HSM.
func (c *testCluster) loginWhenKnown(t testing.TB, id uint32, role, user, password string) *client.Session {
	t.Helper()
	cl := c.dial(t, 1, id)
	var s *client.Session
	pollUntil(t, fmt.Sprintf("%s can log in on HSM %d", user, id), func() error {
		var err error
		s, err = cl.Login(t.Context(), role, user, password)
		return err
	})
	t.Cleanup(func() { _ = s.Close(context.WithoutCancel(t.Context())) })
	return s
}

// Key templates and mechanisms.

var (
	mechAESKeyGen   = client.Mechanism{Type: ck.CKM_AES_KEY_GEN}
	mechECKeyGen    = client.Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN}
	mechECDSASHA256 = client.Mechanism{Type: ck.CKM_ECDSA_SHA256}
)

func labelAttr(l string) client.Attribute {
	return client.Attribute{Type: ck.CKA_LABEL, Value: []byte(l)}
}

func aesTokenTemplate(l string) []client.Attribute {
	return []client.Attribute{
		client.Bool(ck.CKA_TOKEN, true), labelAttr(l),
		{Type: ck.CKA_VALUE_LEN, Value: binary.LittleEndian.AppendUint64(nil, 32)},
	}
}

func p256Params(t testing.TB) []byte {
	b, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// genECPair generates a P-256 token key pair labelled l.
func genECPair(t testing.TB, s *client.Session, l string, opts ...client.CreateOption) (pub, priv client.ObjectID) {
	t.Helper()
	pub, priv, err := s.GenerateKeyPair(t.Context(), mechECKeyGen,
		[]client.Attribute{client.Bool(ck.CKA_TOKEN, true), labelAttr(l), {Type: ck.CKA_EC_PARAMS, Value: p256Params(t)}},
		[]client.Attribute{client.Bool(ck.CKA_TOKEN, true), labelAttr(l)}, opts...)
	if err != nil {
		t.Fatalf("generate key pair %s: %v", l, err)
	}
	return pub, priv
}

func gcmMech(iv []byte) client.Mechanism {
	return client.Mechanism{Type: ck.CKM_AES_GCM, IV: iv, TagBits: 128}
}

// listTokenObjects lists the token objects the session's user sees.
func listTokenObjects(ctx context.Context, s *client.Session) (map[client.ObjectID]bool, error) {
	ids, err := s.FindObjects(ctx, []client.Attribute{client.Bool(ck.CKA_TOKEN, true)})
	if err != nil {
		return nil, err
	}
	out := make(map[client.ObjectID]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// missingIDs returns the ids of want that are not in have.
func missingIDs(want []client.ObjectID, have map[client.ObjectID]bool) []client.ObjectID {
	var out []client.ObjectID
	for _, id := range want {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}

// holdsAll waits until HSM id, through session s, lists every object of
// want. If it does not, the error says how many token objects its store
// holds (HsmKeysTokenOccupied), to tell a record that never arrived from one
// the device did not take.
func (c *testCluster) holdsAll(t testing.TB, id uint32, s *client.Session, want []client.ObjectID) time.Duration {
	t.Helper()
	return pollUntil(t, fmt.Sprintf("HSM %d holds all %d objects", id, len(want)), func() error {
		have, err := listTokenObjects(t.Context(), s)
		if err != nil {
			return err
		}
		if m := missingIDs(want, have); len(m) > 0 {
			return fmt.Errorf("%d missing, e.g. %x; the HSM lists %d token objects, its store holds %v",
				len(m), m[:min(len(m), 5)], len(have), c.metricValue(t, id, "HsmKeysTokenOccupied"))
		}
		return nil
	})
}

// refusedWith reports whether err is an HSM's refusal with return value rv.
func refusedWith(err error, rv ck.RV) bool {
	return errors.Is(err, &client.Error{RV: rv})
}
