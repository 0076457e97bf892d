package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// TestUpDetach is `coffer up` in a script: --detach returns once the
// cluster is usable (the aws CLI sees it ACTIVE, coffer cli logs in with
// up.json's password), a second coffer up on the same directory refuses,
// `coffer down` stops it and every HSM it started, says "not running" the
// second time, and `coffer up --detach` again brings back the same cluster
// with its key.
func TestUpDetach(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("coffer up puts its HSMs on loopback addresses of their own, which only Linux routes without setup")
	}
	testtool.Require(t, "aws")
	dir := t.TempDir()
	d := newDetachRun(t, dir)
	addr := freeLoopback(t)

	out, err := d.coffer(3*time.Minute, "up", "--detach", "--data-dir", d.data, "--listen", addr)
	if err != nil {
		t.Fatalf("coffer up --detach: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Coffer is up") || !strings.Contains(out, "coffer down --data-dir") {
		t.Fatalf("coffer up --detach says:\n%s", out)
	}
	// up.json is complete the moment it returns, and the pending record gone.
	first := d.readUp()
	if first.ClusterID == "" || len(first.HSMAddresses) != 2 || first.Admin.Password == "" || first.CryptoUser.Password == "" ||
		first.SecretAccessKey == "" || !exists(first.PKCS11Config) || !exists(first.TrustAnchor) {
		t.Fatalf("up.json right after coffer up --detach: %+v", first)
	}
	if exists(filepath.Join(d.data, upPendingName)) {
		t.Fatalf("%s is still there once the cluster is ready", upPendingName)
	}
	if state := d.aws(first, "describe-clusters", "--filters", "clusterIds="+first.ClusterID, "--query", "Clusters[0].State"); state != "ACTIVE" {
		t.Fatalf("describe-clusters says %q, want ACTIVE", state)
	}
	if out, err := d.cli(first, "key", "generate-symmetric", "aes", "--label", "detach-key", "--key-length-bytes", "32"); err != nil {
		t.Fatalf("coffer cli as the crypto user of up.json: %v\n%s", err, out)
	}
	pids := d.pids()
	if len(pids) != 3 {
		t.Fatalf("pids %v: want coffer up's and two HSM nodes'", pids)
	}
	for _, pid := range pids {
		if !processAlive(pid) {
			t.Fatalf("pid %d of %v does not run", pid, pids)
		}
	}
	if b, err := os.ReadFile(filepath.Join(d.data, upLogName)); err != nil || !strings.Contains(string(b), "Coffer is up") {
		t.Fatalf("up.log: %v\n%s", err, b)
	}

	// A second coffer up on the same directory refuses, detached or not,
	// and leaves the running one alone.
	for _, args := range [][]string{{"up", "--detach", "--data-dir", d.data}, {"up", "--data-dir", d.data}} {
		out, err := d.coffer(time.Minute, args...)
		if err == nil || !strings.Contains(out, "already runs") || !strings.Contains(out, fmt.Sprintf("pid %d", pids[0])) {
			t.Fatalf("%v while one runs: %v\n%s", args, err, out)
		}
	}
	if first.CryptoUser != d.readUp().CryptoUser || !processAlive(pids[0]) {
		t.Fatal("a refused coffer up changed up.json or stopped the running one")
	}

	// coffer down stops coffer up and both HSM nodes.
	if out, err := d.coffer(2*time.Minute, "down", "--data-dir", d.data); err != nil || !strings.Contains(out, "stopped") {
		t.Fatalf("coffer down: %v\n%s", err, out)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Fatalf("pid %d still runs after coffer down (pids %v)", pid, pids)
		}
	}
	if exists(filepath.Join(d.data, upPidName)) {
		t.Fatal("up.pid is left after coffer down")
	}
	out, err = d.coffer(time.Minute, "down", "--data-dir", d.data)
	if err != nil || !strings.Contains(out, "not running") {
		t.Fatalf("coffer down when nothing runs: %v\n%s", err, out)
	}

	// The same cluster comes back, with its users and its key.
	out, err = d.coffer(3*time.Minute, "up", "--detach", "--data-dir", d.data)
	if err != nil {
		t.Fatalf("coffer up --detach again: %v\n%s", err, out)
	}
	again := d.readUp()
	if again.ClusterID != first.ClusterID || again.CryptoUser != first.CryptoUser || again.Admin != first.Admin || again.Endpoint != first.Endpoint {
		t.Fatalf("resumed %+v, first %+v", again, first)
	}
	if out, err := d.cli(again, "key", "list", "--filter", "attr.label=detach-key"); err != nil || !strings.Contains(out, "detach-key") {
		t.Fatalf("the key made before coffer down: %v\n%s", err, out)
	}

	// A coffer up killed outright leaves its HSM nodes running (each in a
	// process group of its own): coffer down finds and stops them too.
	pids = d.pids()
	if len(pids) != 3 {
		t.Fatalf("pids %v: want coffer up's and two HSM nodes'", pids)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	if !waitUntilFor(func() bool { return !processAlive(pids[0]) }, 10*time.Second) {
		t.Fatal("coffer up survived SIGKILL")
	}
	for _, pid := range pids[1:] {
		if !processAlive(pid) {
			t.Fatalf("HSM node %d died with coffer up: nothing left for coffer down to find", pid)
		}
	}
	out, err = d.coffer(2*time.Minute, "down", "--data-dir", d.data)
	if err != nil || !strings.Contains(out, "stopped 2 HSM node(s) left running") {
		t.Fatalf("coffer down after coffer up was killed: %v\n%s", err, out)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Fatalf("pid %d still runs after coffer down (pids %v)", pid, pids)
		}
	}
}

// TestUpDetachFails: a detached coffer up that cannot become ready fails
// with the end of its log, and leaves nothing running.
func TestUpDetachFails(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("coffer up puts its HSMs on loopback addresses of their own, which only Linux routes without setup")
	}
	dir := t.TempDir()
	d := newDetachRun(t, dir)

	// Its port is taken.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := d.coffer(time.Minute, "up", "--detach", "--data-dir", d.data, "--listen", ln.Addr().String())
	if err == nil || !strings.Contains(out, "exited before the cluster was ready") || !strings.Contains(out, "address already in use") ||
		!strings.Contains(out, "leave --listen out and coffer up picks a port itself") ||
		!strings.Contains(out, filepath.Join(d.data, upLogName)) {
		t.Fatalf("coffer up --detach on a port in use: %v\n%s", err, out)
	}
	if exists(filepath.Join(d.data, "up.json")) {
		t.Fatal("up.json written for a cluster that never came up")
	}

	// Not ready in time (no cluster is ready a millisecond after its
	// command started): it stops what it started.
	out, err = d.coffer(2*time.Minute, "up", "--detach", "--data-dir", d.data, "--listen", freeLoopback(t), "--wait-timeout", "1ms")
	if err == nil || !strings.Contains(out, "not ready within --wait-timeout 1ms; stopped it") {
		t.Fatalf("coffer up --detach --wait-timeout 1ms: %v\n%s", err, out)
	}
	if _, running, err := upRunning(d.data); running || err != nil {
		t.Fatalf("coffer up still holds its directory after a failed --detach (%v)", err)
	}
	for _, pid := range d.pids() {
		if processAlive(pid) {
			t.Fatalf("pid %d still runs after a failed --detach", pid)
		}
	}
	if exists(filepath.Join(d.data, "up.json")) {
		t.Fatal("up.json written for a cluster that was not ready")
	}
	if out, err := d.coffer(time.Minute, "down", "--data-dir", d.data); err != nil || !strings.Contains(out, "not running") {
		t.Fatalf("coffer down after a failed --detach: %v\n%s", err, out)
	}
}

type detachRun struct {
	t    *testing.T
	dir  string
	bin  string // this test binary, linked as coffer
	data string
	env  []string
}

func newDetachRun(t *testing.T, dir string) *detachRun {
	d := &detachRun{t: t, dir: dir, bin: cofferBinary(t, dir), data: filepath.Join(dir, "data"),
		env: append(os.Environ(), fmt.Sprintf("COFFER_ADDRESS_BASE=%d", 20+rand.IntN(200)), "HOME="+dir)}
	// Whatever happened, nothing is left running.
	t.Cleanup(func() {
		if _, running, _ := upRunning(d.data); running {
			out, err := d.coffer(2*time.Minute, "down", "--data-dir", d.data)
			t.Logf("coffer down at the end: %v\n%s", err, out)
		}
		stopLeftoverNodes(d.data)
	})
	return d
}

// coffer runs coffer ARGS, bounded by limit, and returns its output.
func (d *detachRun) coffer(limit time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(d.t.Context(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env, cmd.Dir = d.env, d.dir
	cmd.WaitDelay = 5 * time.Second
	b, err := cmd.CombinedOutput()
	return string(b), err
}

func (d *detachRun) readUp() upFile {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.data, "up.json"))
	if err != nil {
		d.t.Fatal(err)
	}
	var up upFile
	if err := json.Unmarshal(b, &up); err != nil {
		d.t.Fatal(err)
	}
	return up
}

// pids are coffer up's (first, if it runs) and its HSM nodes'.
func (d *detachRun) pids() []int {
	var pids []int
	if pid := readPid(filepath.Join(d.data, upPidName)); pid > 0 {
		pids = append(pids, pid)
	}
	files, _ := filepath.Glob(filepath.Join(d.data, "controlplane", "hsm-side", "*", "*", "*", "node.pid"))
	for _, f := range files {
		if pid := readPid(f); pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// aws runs aws cloudhsmv2 with up.json's endpoint and keys.
func (d *detachRun) aws(up upFile, args ...string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.t.Context(), time.Minute)
	defer cancel()
	full := append([]string{"cloudhsmv2"}, args...)
	full = append(full, "--endpoint-url", up.Endpoint, "--output", "text")
	cmd := exec.CommandContext(ctx, "aws", full...)
	cmd.Dir = d.dir
	cmd.Env = append(os.Environ(), "HOME="+d.dir, "AWS_CONFIG_FILE="+filepath.Join(d.dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(d.dir, "aws-credentials"), "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ACCESS_KEY_ID="+up.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+up.SecretAccessKey, "AWS_DEFAULT_REGION="+up.Region)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("aws %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// cli runs a coffer cli command as up.json's crypto user.
func (d *detachRun) cli(up upFile, args ...string) (string, error) {
	return d.coffer(time.Minute, append([]string{"cli", "--cluster-config", up.PKCS11Config,
		"--username", up.CryptoUser.Username, "--role", "crypto-user", "--password", up.CryptoUser.Password}, args...)...)
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
