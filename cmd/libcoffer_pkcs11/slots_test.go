package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/client"
)

// TestSlotPerCluster: a configuration that names two clusters (configure
// pkcs11 add-cluster) shows two slots, each token labelled with its
// cluster's id, and a key made in one slot is in that cluster only; checked
// through the library with pkcs11-tool.
func TestSlotPerCluster(t *testing.T) {
	needCluster(t)
	tool := needTool(t, "pkcs11-tool", "opensc")
	two := startCluster(t, "cluster-two", "127.0.0.13")

	f, err := client.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	f.AddCluster(two)
	config := filepath.Join(t.TempDir(), "pkcs11.json")
	if err := f.WriteFile(config); err != nil {
		t.Fatal(err)
	}
	p11 := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), tool, append([]string{"--module", env.lib}, args...)...)
		cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+config)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pkcs11-tool %s: %v\n%s\n--- library log tail:\n%s", strings.Join(args, " "), err, out, logTail())
		}
		return string(out)
	}
	slots := p11("--list-slots")
	if !strings.Contains(slots, "Available slots:") || strings.Count(slots, "token label") != 2 ||
		!strings.Contains(slots, "cluster-local") || !strings.Contains(slots, "cluster-two") {
		t.Fatalf("slots:\n%s", slots)
	}
	if i, j := strings.Index(slots, "cluster-local"), strings.Index(slots, "cluster-two"); i > j {
		t.Errorf("the first cluster of the file is not the first slot:\n%s", slots)
	}
	label := fmt.Sprintf("slot-two-%d", time.Now().UnixNano())
	p11("--token-label", "cluster-two", "--login", "--pin", userPIN, "--keygen", "--key-type", "AES:32", "--label", label)
	if out := p11("--token-label", "cluster-two", "--login", "--pin", userPIN, "--list-objects", "--type", "secrkey"); !strings.Contains(out, label) {
		t.Errorf("cluster-two does not list the key made in its slot:\n%s", out)
	}
	if out := p11("--token-label", "cluster-local", "--login", "--pin", userPIN, "--list-objects", "--type", "secrkey"); strings.Contains(out, label) {
		t.Errorf("cluster-local lists the key made in cluster-two's slot:\n%s", out)
	}
}

// startCluster starts a one-HSM cluster on ip, activated, with the crypto
// user of the package's cluster (the same name and password), and returns
// its entry for a configuration file. It is stopped when the test ends.
func startCluster(t *testing.T, id, ip string) client.ClusterEntry {
	t.Helper()
	coffer := os.Getenv("COFFER_BIN")
	if coffer == "" {
		coffer = filepath.Join(env.dir, "coffer")
	}
	addr, err := freeAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out, err := exec.Command(coffer, "hsm", "init", "--dir", dir, "--cluster-id", id, "--node", "1="+addr,
		"--login-failure-delay", "1ms").CombinedOutput(); err != nil {
		t.Fatalf("coffer hsm init: %v\n%s", err, out)
	}
	log, err := os.Create(filepath.Join(dir, "hsm-1.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := exec.Command(coffer, "hsm", "run", "--config", filepath.Join(dir, "hsm-1.json"))
	p.Stdout, p.Stderr = log, log
	p.SysProcAttr = hsmProcAttr()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	log.Close()
	t.Cleanup(func() {
		_ = p.Process.Kill()
		_ = p.Wait()
	})
	e := client.ClusterEntry{ClusterID: id, HSMs: []string{addr}, HSMCACert: filepath.Join(dir, "customerCA.crt"), CreateObjectMinimumNodes: 1}
	f := &client.File{ClusterID: id, HSMs: e.HSMs, HSMCACert: e.HSMCACert}
	cfg, err := f.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ReconnectInterval = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var s *client.Session
	for {
		cl, err := client.Dial(ctx, cfg)
		if err == nil {
			s, err = cl.Login(ctx, "admin", "admin", "password")
			if err == nil {
				t.Cleanup(func() { cl.Close() })
				break
			}
			cl.Close()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster %s did not come up: %v", id, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := s.Activate(ctx, adminPass); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, cuUser, "crypto-user", cuPass, nil); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctx)
	return e
}
