package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/testtool"
)

// TestSlotPerCluster: a configuration that names two clusters (configure
// pkcs11 add-cluster) shows two slots, each token labelled with its
// cluster's id, and a key made in one slot is in that cluster only; checked
// through the library with pkcs11-tool.
func TestSlotPerCluster(t *testing.T) {
	needCluster(t)
	tool := testtool.Path(t, "pkcs11-tool")
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
	dir, e := initCluster(t, id, ip)
	runHSM(t, dir)
	s := login(t, e, "admin", "admin", "password")
	if err := s.Activate(t.Context(), adminPass); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(t.Context(), cuUser, "crypto-user", cuPass, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func cofferBin() string {
	if bin := os.Getenv("COFFER_BIN"); bin != "" {
		return bin
	}
	return filepath.Join(env.dir, "coffer")
}

// initCluster makes the files of a one-HSM cluster on ip (coffer hsm init).
func initCluster(t *testing.T, id, ip string) (dir string, e client.ClusterEntry) {
	t.Helper()
	addr, err := freeAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if out, err := exec.Command(cofferBin(), "hsm", "init", "--dir", dir, "--cluster-id", id, "--node", "1="+addr,
		"--login-failure-delay", "1ms").CombinedOutput(); err != nil {
		t.Fatalf("coffer hsm init: %v\n%s", err, out)
	}
	return dir, client.ClusterEntry{ClusterID: id, HSMs: []string{addr}, HSMCACert: filepath.Join(dir, "customerCA.crt"), CreateObjectMinimumNodes: 1}
}

// runHSM runs the HSM of dir until stop (or the test's end).
func runHSM(t *testing.T, dir string) (stop func()) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(dir, "hsm-1.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := exec.Command(cofferBin(), "hsm", "run", "--config", filepath.Join(dir, "hsm-1.json"))
	p.Stdout, p.Stderr = log, log
	p.SysProcAttr = hsmProcAttr()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	log.Close()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = p.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// login logs in on the cluster of e once its HSM answers; the session and
// its connection are closed when the test ends.
func login(t *testing.T, e client.ClusterEntry, role, user, pw string) *client.Session {
	t.Helper()
	f := &client.File{ClusterID: e.ClusterID, HSMs: e.HSMs, HSMCACert: e.HSMCACert}
	cfg, err := f.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ReconnectInterval = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for {
		cl, err := client.Dial(ctx, cfg)
		if err == nil {
			s, err := cl.Login(ctx, role, user, pw)
			if err == nil {
				t.Cleanup(func() { _ = s.Close(context.Background()); cl.Close() })
				return s
			}
			cl.Close()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster %s: login as %s: %v", e.ClusterID, user, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestReplicatedKeyThroughSlots is seed 000's last step through the
// module: clone-two is made from a copy of clone-one's data (as from a
// backup); a non-extractable AES key made on clone-one after that is
// replicated (key replicate's calls), and what clone-one's slot encrypts
// with it clone-two's slot decrypts.
func TestReplicatedKeyThroughSlots(t *testing.T) {
	needCluster(t)
	tool := testtool.Path(t, "pkcs11-tool")
	ctx := t.Context()
	dirOne, one := initCluster(t, "clone-one", "127.0.0.14")
	stopOne := runHSM(t, dirOne)
	s := login(t, one, "admin", "admin", "password")
	if err := s.Activate(ctx, adminPass); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, cuUser, "crypto-user", cuPass, nil); err != nil {
		t.Fatal(err)
	}
	stopOne()
	dirTwo, two := initCluster(t, "clone-two", "127.0.0.15")
	data := filepath.Join("hsm-1", "data")
	if err := os.MkdirAll(filepath.Join(dirTwo, data), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node.key", "hsm.db", "audit.log"} {
		b, err := os.ReadFile(filepath.Join(dirOne, data, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirTwo, data, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runHSM(t, dirOne)
	runHSM(t, dirTwo)

	src, dst := login(t, one, "crypto-user", cuUser, cuPass), login(t, two, "crypto-user", cuUser, cuPass)
	label := "replicated-aes"
	id, err := src.GenerateKey(ctx, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, []client.Attribute{
		client.Bool(ck.CKA_TOKEN, true), client.Bool(ck.CKA_EXTRACTABLE, false), client.Bool(ck.CKA_ENCRYPT, true),
		client.Bool(ck.CKA_DECRYPT, true), {Type: ck.CKA_LABEL, Value: []byte(label)},
		{Type: ck.CKA_VALUE_LEN, Value: binary.LittleEndian.AppendUint64(nil, 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := src.ExportReplica(ctx, id, "clone-two")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dst.ImportReplica(ctx, r); err != nil || got.Object != id || !got.Applied {
		t.Fatalf("import: %+v, %v", got, err)
	}

	f := &client.File{Logging: client.Logging{File: env.log, Level: "debug"}}
	f.AddCluster(one)
	f.AddCluster(two)
	f.CreateObjectMinimumNodes = 1
	config := filepath.Join(t.TempDir(), "pkcs11.json")
	if err := f.WriteFile(config); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plain, ct, back := filepath.Join(dir, "plain"), filepath.Join(dir, "ct"), filepath.Join(dir, "back")
	msg := []byte("seed 000, region") // one AES block
	if err := os.WriteFile(plain, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	p11 := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, tool, append([]string{"--module", env.lib, "--login", "--pin", userPIN}, args...)...)
		cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+config)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pkcs11-tool %s: %v\n%s\n--- library log tail:\n%s", strings.Join(args, " "), err, out, logTail())
		}
	}
	p11("--token-label", "clone-one", "--encrypt", "-m", "AES-ECB", "--label", label, "-i", plain, "-o", ct)
	p11("--token-label", "clone-two", "--decrypt", "-m", "AES-ECB", "--label", label, "-i", ct, "-o", back)
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("clone-two decrypted %q, want %q", got, msg)
	}
	if c, _ := os.ReadFile(ct); bytes.Equal(c, msg) || len(c) != len(msg) {
		t.Fatalf("ciphertext %x", c)
	}
}
