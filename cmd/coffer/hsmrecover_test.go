package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/node"
	"github.com/coffer-hsm/coffer/internal/store"
)

var recoverTestCost = hsm.PasswordCost{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1, PBKDF2Iterations: 1000}

// openDataDir opens a node's data dir as the node does, and its device.
func openDataDir(t *testing.T, dir string) (dev *hsm.Device, closeAll func()) {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, node.StoreFile), NodeKeyPath: filepath.Join(dir, node.NodeKeyFile), Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !st.HasMaskingKey() {
		if err := st.SetMaskingKey(ctx, bytes.Repeat([]byte{7}, 32)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	o, err := node.OpenOffline(ctx, node.OfflineConfig{DataDir: dir, NodeID: 1, Device: node.DeviceConfig{Password: recoverTestCost}})
	if err != nil {
		t.Fatal(err)
	}
	return o.Device, func() { o.Close() }
}

// TestHSMUnlockAdmin: `coffer hsm unlock-admin` on a stopped node's data dir
// unlocks an admin that failed logins locked, keeps its password, and audits
// it; it refuses while the node holds the store, and refuses a non-admin.
func TestHSMUnlockAdmin(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	if err := store.CreateNodeKey(filepath.Join(dir, node.NodeKeyFile)); err != nil {
		t.Fatal(err)
	}
	dev, closeAll := openDataDir(t, dir)
	s := dev.OpenSession()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dev.Login(ctx, s, hsm.RoleAdmin, hsm.DefaultAdminName, hsm.DefaultPreAdminPIN))
	must(dev.Activate(ctx, s, "Admin-pw1"))
	must(dev.CreateUser(ctx, s, "alice", hsm.RoleCryptoUser, "Alice-pw1", hsm.Approvals{}))
	must(dev.Logout(s))
	for range 5 {
		if err := dev.Login(ctx, s, hsm.RoleAdmin, hsm.DefaultAdminName, "wrong-password"); !errors.Is(err, hsm.ErrPinIncorrect) {
			t.Fatalf("wrong login: %v", err)
		}
	}
	if err := dev.Login(ctx, s, hsm.RoleAdmin, hsm.DefaultAdminName, "Admin-pw1"); !errors.Is(err, hsm.ErrPinLocked) {
		t.Fatalf("login of the locked admin: %v", err)
	}

	config := filepath.Join(dir, "hsm-1.json")
	b, _ := json.Marshal(hsmFile{DataDir: dir, NodeID: 1})
	must(os.WriteFile(config, b, 0o600))
	var out, errOut bytes.Buffer
	// The node still runs (holds the store): refused.
	err := runHSM(ctx, []string{"unlock-admin", "--config", config, "--username", "admin"}, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("unlock-admin on a running node: %v", err)
	}
	closeAll()

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no username", []string{"--config", config}, "--config and --username are required"},
		{"crypto user", []string{"--config", config, "--username", "alice"}, "alice is a crypto-user"},
		{"unknown", []string{"--config", config, "--username", "nobody"}, "no such user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runHSM(context.Background(), append([]string{"unlock-admin"}, tc.args...), strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	out.Reset()
	must(runHSM(ctx, []string{"unlock-admin", "--config", config, "--username", "admin"}, strings.NewReader(""), &out, &errOut))
	if !strings.Contains(out.String(), `unlocked admin "admin"`) {
		t.Errorf("stdout %q", out.String())
	}

	dev, closeAll = openDataDir(t, dir)
	defer closeAll()
	must(dev.Login(ctx, dev.OpenSession(), hsm.RoleAdmin, hsm.DefaultAdminName, "Admin-pw1"))
	logged, err := os.ReadFile(filepath.Join(dir, node.AuditFile))
	must(err)
	if !strings.Contains(string(logged), `"user.recover-admin"`) {
		t.Error("the audit log does not record the recovery")
	}
}
