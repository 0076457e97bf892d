package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUp runs `coffer up`, checks up.json, stops it with Ctrl-C (every HSM
// stops too), and runs it again: the same cluster comes back.
func TestUp(t *testing.T) {
	dir := t.TempDir()
	coffer := cofferBinary(t, dir)
	data := filepath.Join(dir, "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := fmt.Sprintf("COFFER_ADDRESS_BASE=%d", 20+rand.IntN(200))

	first := runUpOnce(t, coffer, data, addr, base)
	var keys map[string]json.RawMessage
	b, err := os.ReadFile(filepath.Join(data, "up.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	want := []string{"access_key_id", "admin", "cluster_id", "crypto_user", "endpoint", "hsm_addresses", "pkcs11_config",
		"pkcs11_module", "region", "secret_access_key", "trust_anchor"}
	if !slices.Equal(names, want) {
		t.Fatalf("up.json keys %v, want %v", names, want)
	}
	if len(first.HSMAddresses) != 2 || first.HSMAddresses[0] == first.HSMAddresses[1] || first.CryptoUser.Password == "" {
		t.Fatalf("up.json %+v", first)
	}
	if !exists(first.PKCS11Config) || !exists(first.TrustAnchor) {
		t.Fatal("the PKCS#11 config or the trust anchor is missing")
	}

	checkUpPrivate(t, data, first)

	// An up.json left open to others is made private again at start.
	if err := os.Chmod(filepath.Join(data, "up.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := runUpOnce(t, coffer, data, addr, base)
	if second.ClusterID != first.ClusterID || second.CryptoUser != first.CryptoUser || second.Admin != first.Admin {
		t.Fatalf("resumed %+v, first %+v", second, first)
	}
	checkUpPrivate(t, data, second)
	if b, _ := os.ReadFile(data + ".log"); !strings.Contains(string(b), "up.json was mode 0644") {
		t.Fatalf("coffer up did not say it made up.json private:\n%s", b)
	}
}

// checkUpPrivate: coffer up printed none of the secrets (stdout is in
// DATA.out), and up.json and the access keys are readable by their owner
// only.
func checkUpPrivate(t *testing.T, data string, up upFile) {
	t.Helper()
	out, err := os.ReadFile(data + ".out")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), filepath.Join(data, "up.json")) {
		t.Fatalf("coffer up does not say where up.json is:\n%s", out)
	}
	for _, secret := range []string{up.SecretAccessKey, up.Admin.Password, up.CryptoUser.Password} {
		if secret == "" || strings.Contains(string(out), secret) {
			t.Fatalf("coffer up printed a secret (or up.json lacks one: %q):\n%s", secret, out)
		}
	}
	for _, f := range []string{filepath.Join(data, "up.json"), filepath.Join(data, "controlplane", "credentials.json"), filepath.Join(data, "customerCA.key")} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
}

// runUpOnce starts coffer up, waits until it says it is up, stops it with
// SIGINT and checks that its HSM nodes are gone.
func runUpOnce(t *testing.T, coffer, data, addr, env string) upFile {
	t.Helper()
	cmd := exec.Command(coffer, "up", "--data-dir", data, "--listen", addr)
	cmd.Env = append(os.Environ(), env)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(data + ".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			return err
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			return fmt.Errorf("coffer up did not stop on SIGINT: %w", <-exited)
		}
	}
	t.Cleanup(func() { stop() })
	timeout := time.After(3 * time.Minute)
	var out []string
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				b, _ := os.ReadFile(logPath)
				t.Fatalf("coffer up exited: %s\n%s", strings.Join(out, "\n"), b)
			}
			out = append(out, l)
			if strings.HasPrefix(l, "Coffer is up") {
				break wait
			}
		case <-timeout:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("coffer up is not up after 3 minutes:\n%s", b)
		}
	}
	var up upFile
	b, err := os.ReadFile(filepath.Join(data, "up.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &up); err != nil {
		t.Fatal(err)
	}
	pids, _ := filepath.Glob(filepath.Join(data, "controlplane", "hsm-side", "*", "*", "*", "node.pid"))
	if len(pids) != 2 {
		t.Fatalf("%d node pid files, want 2", len(pids))
	}
	if err := stop(); err != nil {
		t.Fatalf("coffer up after SIGINT: %v", err)
	}
	for l := range lines {
		out = append(out, l)
	}
	if err := os.WriteFile(data+".out", []byte(strings.Join(out, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		b, _ := os.ReadFile(p)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid > 0 && syscall.Kill(pid, 0) == nil {
			syscall.Kill(-pid, syscall.SIGKILL)
			t.Fatalf("HSM node %d still runs after coffer up stopped", pid)
		}
	}
	return up
}
