package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/testtool"
	"github.com/coffer-hsm/coffer/internal/testwait"
)

// TestAWSWalkthrough is seed 004's walkthrough with the real aws CLI and
// openssl against `coffer controlplane`: create a cluster and an HSM, sign
// the CSR with an openssl CA, initialize, activate and create a crypto user,
// make an AES key, add an HSM in a second AZ and use the key through it.
func TestAWSWalkthrough(t *testing.T) {
	testtool.Require(t, "aws", "openssl")
	w := startWalkthrough(t)

	// Step 1: the cluster, in two subnets (two AZs). (The seed writes --tags;
	// the CLI's option is --tag-list.)
	var created struct {
		Cluster struct{ ClusterId, State string }
	}
	w.awsJSON(&created, "create-cluster", "--hsm-type", "hsm1.medium", "--subnet-ids", "subnet-0aaaaaaa", "subnet-0bbbbbbb",
		"--tag-list", "Key=Environment,Value=Production", "Key=Name,Value=prod-hsm-cluster")
	id := created.Cluster.ClusterId
	if !strings.HasPrefix(id, "cluster-") || created.Cluster.State != "CREATE_IN_PROGRESS" {
		t.Fatalf("create-cluster: %+v", created)
	}
	w.waitFor("UNINITIALIZED", "describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].State")

	// Step 2: the first HSM.
	w.aws("create-hsm", "--cluster-id", id, "--availability-zone", "us-east-1a")
	w.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].Hsms[0].State")

	// Step 3: the CSR, signed by an openssl CA; initialize.
	csr := w.aws("describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].Certificates.ClusterCsr")
	w.write("cluster-csr.pem", csr)
	w.openssl("genrsa", "-out", "ca-key.pem", "2048")
	w.openssl("req", "-new", "-x509", "-key", "ca-key.pem", "-out", "ca-cert.pem", "-days", "3650", "-subj", "/CN=CloudHSM CA")
	w.openssl("x509", "-req", "-in", "cluster-csr.pem", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
		"-out", "cluster-cert.pem", "-days", "3650", "-sha256")
	// A certificate for another key is refused, clearly.
	if out, err := w.awsErr("initialize-cluster", "--cluster-id", id, "--signed-cert", "file://ca-cert.pem", "--trust-anchor", "file://ca-cert.pem"); err == nil ||
		!strings.Contains(out, "CloudHsmInvalidRequestException") {
		t.Fatalf("initialize-cluster with the CA's own certificate: %v %s", err, out)
	}
	w.aws("initialize-cluster", "--cluster-id", id, "--signed-cert", "file://cluster-cert.pem", "--trust-anchor", "file://ca-cert.pem")
	w.waitFor("INITIALIZED", "describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].State")

	// Steps 4–5: the client configuration, activation and a crypto user,
	// with coffer cli as the seed does with the management utility.
	ip1 := w.aws("describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].Hsms[0].EniIp")
	ctx := t.Context()
	cliConfig := filepath.Join(w.dir, "cli.json")
	w.cofferCmd("configure", "cli", "-a", net.JoinHostPort(ip1, "2223"), "--hsm-ca-cert", filepath.Join(w.dir, "ca-cert.pem"), "--path", cliConfig)
	w.cofferCmd("cli", "--cluster-config", cliConfig, "cluster", "activate", "--password", "admin-password-1")
	w.cofferCmd("cli", "--cluster-config", cliConfig, "--username", "admin", "--role", "admin",
		"user", "create", "--username", "app_user", "--role", "crypto-user", "--password", "app-password-1")
	w.waitFor("ACTIVE", "describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].State")

	// An AES key made with pkcs11-tool through libcoffer_pkcs11.so (seed 004:
	// "generate a key using PKCS#11"), then used once.
	w.pkcs11Tool(id, ip1, "app_user:app-password-1", "--keygen", "--key-type", "AES:32", "--label", "my-encryption-key")
	s := w.login(ctx, id, []string{ip1}, "crypto-user", "app_user", "app-password-1")
	keys, err := s.FindObjects(ctx, []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte("my-encryption-key")}})
	if err != nil || len(keys) != 1 {
		t.Fatalf("the key pkcs11-tool made: %v %v", keys, err)
	}
	key := keys[0]
	gcm := client.Mechanism{Type: ck.CKM_AES_GCM, IV: []byte("coffer-iv-12"), TagBits: 128}
	plain := []byte("sensitive data that needs protection")
	sealed, err := s.Encrypt(ctx, key, gcm, plain)
	if err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)

	// Step 6: a second HSM in another AZ; the key works through it alone.
	w.aws("create-hsm", "--cluster-id", id, "--availability-zone", "us-east-1b")
	w.waitFor("ACTIVE ACTIVE", "describe-clusters", "--filters", "clusterIds="+id, "--query", "join(' ', Clusters[0].Hsms[].State)")
	ip2 := w.aws("describe-clusters", "--filters", "clusterIds="+id, "--query", "Clusters[0].Hsms[1].EniIp")
	if ip2 == ip1 {
		t.Fatalf("both HSMs at %s", ip1)
	}
	s = w.login(ctx, id, []string{ip2}, "crypto-user", "app_user", "app-password-1")
	defer s.Close(ctx)
	found, err := s.FindObjects(ctx, []client.Attribute{{Type: ck.CKA_LABEL, Value: []byte("my-encryption-key")}})
	if err != nil || len(found) != 1 {
		t.Fatalf("the key on the new HSM: %v %v", found, err)
	}
	opened, err := s.Decrypt(ctx, found[0], gcm, sealed)
	if err != nil || !bytes.Equal(opened, plain) {
		t.Fatalf("decrypt through the new HSM: %q %v", opened, err)
	}

	// A request signed with the wrong secret is refused as AWS does.
	out, err := w.awsWith([]string{"AWS_SECRET_ACCESS_KEY=wrong-secret-wrong-secret"}, "describe-clusters")
	if err == nil || !strings.Contains(out, "InvalidSignatureException") {
		t.Fatalf("wrong secret: %v %s", err, out)
	}
}

// pkcs11Tool runs OpenSC's pkcs11-tool with Coffer's PKCS#11 module (built
// by `make build` into bin/, or here if missing) configured for the HSM at ip.
func (w *walkthrough) pkcs11Tool(clusterID, ip, pin string, args ...string) string {
	w.t.Helper()
	return w.pkcs11ToolAs(clusterID, "", ip, pin, args...)
}

// pkcs11Module is the PKCS#11 library: make build's (COFFER_LIB), or one
// built into dir.
func pkcs11Module(t testing.TB, dir string) string {
	t.Helper()
	if module := os.Getenv("COFFER_LIB"); module != "" {
		return module
	}
	module := filepath.Join(dir, "libcoffer_pkcs11.so")
	build := exec.CommandContext(t.Context(), "go", "build", "-buildmode=c-shared", "-o", module, "../libcoffer_pkcs11")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the PKCS#11 module: %v\n%s", err, out)
	}
	return module
}

// pkcs11ToolAs is pkcs11Tool for a cluster whose certificate names
// certClusterID (restored from a backup of that cluster; "": clusterID).
func (w *walkthrough) pkcs11ToolAs(clusterID, certClusterID, ip, pin string, args ...string) string {
	w.t.Helper()
	testtool.Require(w.t, "pkcs11-tool")
	module := pkcs11Module(w.t, w.dir)
	cfg := filepath.Join(w.dir, "pkcs11.json")
	f := client.File{HSMs: []string{net.JoinHostPort(ip, "2223")}, HSMCACert: filepath.Join(w.dir, "ca-cert.pem"), ClusterID: clusterID,
		CertificateClusterID: certClusterID, Logging: client.Logging{File: filepath.Join(w.dir, "pkcs11.log")}}
	if err := f.WriteFile(cfg); err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.CommandContext(w.t.Context(), "pkcs11-tool", append([]string{"--module", module, "--login", "--pin", pin}, args...)...)
	cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+cfg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(w.dir, "pkcs11.log"))
		w.t.Fatalf("pkcs11-tool %s: %v\n%s\nmodule log:\n%s", strings.Join(args, " "), err, out, log)
	}
	return string(out)
}

// cofferBinary links this test binary as DIR/bin/coffer: TestMain runs
// coffer when started by that name.
func cofferBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	coffer := filepath.Join(bin, "coffer")
	if err := os.Link(self, coffer); err != nil {
		b, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(coffer, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return coffer
}

type walkthrough struct {
	t        *testing.T
	dir      string
	coffer   string // this test binary, linked as coffer
	endpoint string
	env      []string
	region   string // of aws commands; empty: us-east-1
}

// in returns w with its aws commands sent to region.
func (w *walkthrough) in(region string) *walkthrough {
	c := *w
	c.region = region
	return &c
}

// startWalkthrough runs `coffer controlplane` (this test binary, named
// coffer) with its nodes on addresses of their own.
func startWalkthrough(t *testing.T) *walkthrough {
	dir := t.TempDir()
	coffer := cofferBinary(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	creds := `[{"access_key_id":"AKIAWALKTHROUGH00001","secret_access_key":"walkthrough-secret-0123456789","account_id":"123456789012"}]`
	credPath := filepath.Join(dir, "credentials.json")
	if err := os.WriteFile(credPath, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(coffer, "controlplane", "--data-dir", filepath.Join(dir, "cp"), "--listen", addr,
		"--credentials", credPath, "--stop-nodes")
	cmd.Env = append(os.Environ(), fmt.Sprintf("COFFER_ADDRESS_BASE=%d", 20+rand.IntN(200)))
	logf, err := os.Create(filepath.Join(dir, "controlplane.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("control plane log:\n%s", b)
			logs, _ := filepath.Glob(filepath.Join(dir, "cp", "hsm-side", "*", "*", "*", "hsm.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
		}
	})
	w := &walkthrough{t: t, dir: dir, coffer: coffer, endpoint: "http://" + addr, env: append(os.Environ(),
		"AWS_ACCESS_KEY_ID=AKIAWALKTHROUGH00001", "AWS_SECRET_ACCESS_KEY=walkthrough-secret-0123456789",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1", "AWS_PAGER=")}
	w.eventually("the control plane to answer", func() (bool, string) {
		out, err := w.awsErr("describe-clusters")
		return err == nil, out
	})
	return w
}

func (w *walkthrough) awsWith(extraEnv []string, args ...string) (string, error) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), time.Minute)
	defer cancel()
	full := append([]string{"cloudhsmv2"}, args...)
	region := w.region
	if region == "" {
		region = "us-east-1"
	}
	full = append(full, "--endpoint-url", w.endpoint, "--region", region)
	if !slices.Contains(args, "--output") {
		full = append(full, "--output", "text")
	}
	cmd := exec.CommandContext(ctx, "aws", full...)
	cmd.Dir = w.dir
	cmd.Env = append(append([]string(nil), w.env...), extraEnv...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (w *walkthrough) awsErr(args ...string) (string, error) { return w.awsWith(nil, args...) }

// aws runs an aws cloudhsmv2 command with --output text and fails the test
// on error.
func (w *walkthrough) aws(args ...string) string {
	w.t.Helper()
	out, err := w.awsWith(nil, args...)
	if err != nil {
		w.t.Fatalf("aws cloudhsmv2 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (w *walkthrough) awsJSON(v any, args ...string) {
	w.t.Helper()
	out := w.aws(append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		w.t.Fatalf("aws cloudhsmv2 %s: %v\n%s", args[0], err, out)
	}
}

// waitFor repeats an aws command until it prints want.
func (w *walkthrough) waitFor(want string, args ...string) {
	w.t.Helper()
	w.eventually(fmt.Sprintf("%q from %s", want, strings.Join(args, " ")), func() (bool, string) {
		out, err := w.awsErr(args...)
		return err == nil && out == want, out
	})
}

// eventually polls cond for up to 2 minutes.
func (w *walkthrough) eventually(what string, cond func() (bool, string)) {
	w.t.Helper()
	last := ""
	err := testwait.Eventually(w.t.Context(), 2*time.Minute, 200*time.Millisecond, testwait.Holds(func() bool {
		ok, got := cond()
		last = got
		return ok
	}))
	if err == nil {
		return
	}
	if err := w.t.Context().Err(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Fatalf("waited 2 minutes for %s; last: %s", what, last)
}

func (w *walkthrough) write(name, content string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content+"\n"), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *walkthrough) openssl(args ...string) {
	w.t.Helper()
	cmd := exec.CommandContext(w.t.Context(), "openssl", args...)
	cmd.Dir = w.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cofferCmd runs a coffer command and fails the test if it fails. coffer
// cli logs in as the admin from the environment, as a script would.
func (w *walkthrough) cofferCmd(args ...string) string {
	w.t.Helper()
	out, err := w.cofferErr(nil, args...)
	if err != nil {
		w.t.Fatalf("coffer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// cofferErr runs a coffer command with extra environment variables and
// returns its combined output and error.
func (w *walkthrough) cofferErr(extraEnv []string, args ...string) (string, error) {
	w.t.Helper()
	cmd := exec.CommandContext(w.t.Context(), w.coffer, args...)
	cmd.Dir = w.dir
	cmd.Env = append(append(os.Environ(), "COFFER_CLI_PASSWORD=admin-password-1"), extraEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// login connects to the given HSMs (port 2223, as CloudHSM clients do)
// under the openssl CA and logs in.
func (w *walkthrough) login(ctx context.Context, clusterID string, ips []string, role, user, password string) *client.Session {
	w.t.Helper()
	return w.loginAs(ctx, clusterID, "", ips, role, user, password)
}

// loginAs is login to a cluster whose certificate names certClusterID (a
// cluster restored from a backup of that cluster; "": clusterID).
func (w *walkthrough) loginAs(ctx context.Context, clusterID, certClusterID string, ips []string, role, user, password string) *client.Session {
	w.t.Helper()
	f := client.File{HSMCACert: filepath.Join(w.dir, "ca-cert.pem"), ClusterID: clusterID, CertificateClusterID: certClusterID}
	for _, ip := range ips {
		f.HSMs = append(f.HSMs, net.JoinHostPort(ip, "2223"))
	}
	cfg, err := f.Config(nil)
	if err != nil {
		w.t.Fatal(err)
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.Close() })
	var s *client.Session
	// Activation and new users reach every HSM by sync, a moment later.
	w.eventually("login of "+user, func() (bool, string) {
		s, err = c.Login(ctx, role, user, password)
		return err == nil, fmt.Sprint(err)
	})
	return s
}
