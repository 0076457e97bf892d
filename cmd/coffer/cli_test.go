package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/coffer-hsm/coffer/internal/cli/tree"
	"github.com/coffer-hsm/coffer/internal/client"
)

var updateCLIDocs = flag.Bool("update-cli-docs", false, "rewrite docs/cli.md from the command tree")

// TestCLIDocs fails when docs/cli.md is not what the command tree
// generates: run `go generate ./cmd/coffer` (or this test with
// -update-cli-docs).
func TestCLIDocs(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "cli.md")
	want := tree.Reference()
	if *updateCLIDocs {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go generate ./cmd/coffer", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/cli.md is stale: run go generate ./cmd/coffer")
	}
	for _, cmd := range []string{"coffer cli key generate-symmetric aes", "coffer cli crypto sign ecdsa",
		"coffer cli quorum token-sign generate", "coffer cli cluster mtls set-enforcement", "coffer cli user unlock"} {
		if !bytes.Contains(want, []byte("### "+cmd+"\n")) {
			t.Errorf("docs/cli.md lacks %q", cmd)
		}
	}
}

// cliClusterWait bounds the wait for a script's cluster to be ready.
const cliClusterWait = 60 * time.Second

// setupCLIScript gives a cli_*.txtar script a cluster of its own: two HSMs
// (`coffer hsm init` and two `coffer hsm run` processes of this test binary)
// on 127.0.0.11 and 127.0.0.12 with ports chosen now, not yet activated, and
// a CLI configuration at the default path ($XDG_CONFIG_HOME/coffer/cli.json).
// The script sees HSM1, HSM2 (addresses), CA (the trust anchor) and
// CLUSTER (the directory). The HSMs are stopped when the script ends.
func setupCLIScript(env *testscript.Env) error {
	base := filepath.Base(env.WorkDir)
	if strings.HasPrefix(base, "script-cli_replicate") { // three clusters, two of them clones
		return setupReplicateScript(env)
	}
	if !strings.HasPrefix(base, "script-cli_") ||
		strings.HasPrefix(base, "script-cli_up") { // cli_up*.txtar run `coffer up` instead
		return nil
	}
	coffer, err := exec.LookPath("coffer")
	if err != nil {
		return err
	}
	dir := filepath.Join(env.WorkDir, ".cluster")
	var addrs []string
	for i := 1; i <= 2; i++ {
		a, err := cliFreeAddr(fmt.Sprintf("127.0.0.1%d", i))
		if err != nil {
			return err
		}
		addrs = append(addrs, a)
	}
	if err := runHSMInit([]string{"--dir", dir, "--node", "1=" + addrs[0], "--node", "2=" + addrs[1], "--login-failure-delay", "1ms"}, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("hsm init: %w", err)
	}
	for i := 1; i <= 2; i++ {
		if err := cliStartHSM(env, coffer, dir, i); err != nil {
			return err
		}
	}
	ca := filepath.Join(dir, "customerCA.crt")
	if err := cliWaitReady(addrs, ca); err != nil {
		return err
	}
	config := filepath.Join(env.WorkDir, ".config")
	args := []string{"cli", "-a", addrs[0], "-a", addrs[1], "--hsm-ca-cert", ca, "--path", filepath.Join(config, "coffer", "cli.json")}
	if err := runConfigure(context.Background(), args, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	env.Setenv("XDG_CONFIG_HOME", config)
	env.Setenv("XDG_STATE_HOME", filepath.Join(env.WorkDir, ".state"))
	env.Setenv("HSM1", addrs[0])
	env.Setenv("HSM2", addrs[1])
	env.Setenv("CA", ca)
	env.Setenv("CLUSTER", dir)
	return nil
}

// cliFreeAddr finds a free port on ip; it is closed again before the HSM
// binds it.
func cliFreeAddr(ip string) (string, error) {
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cliStartHSM runs HSM i, logging to CLUSTER/hsm-i.log, and stops it (SIGTERM,
// then SIGKILL) when the script ends.
func cliStartHSM(env *testscript.Env, coffer, dir string, i int) error {
	log, err := os.Create(filepath.Join(dir, fmt.Sprintf("hsm-%d.log", i)))
	if err != nil {
		return err
	}
	cmd := exec.Command(coffer, "hsm", "run", "--config", filepath.Join(dir, fmt.Sprintf("hsm-%d.json", i)))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // owned here: waited for in the Defer below
	env.Defer(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
	})
	return nil
}

// cliWaitReady waits until both HSMs answer and report ready.
func cliWaitReady(addrs []string, ca string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cliClusterWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = cliReady(ctx, addrs, ca)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster did not become ready: %w", last)
		case <-tick.C:
		}
	}
}

func cliReady(ctx context.Context, addrs []string, ca string) error {
	found, err := client.DiscoverCluster(ctx, addrs[0], ca)
	if err != nil {
		return err
	}
	f := &client.File{HSMs: addrs, HSMCACert: ca, ClusterID: found.ClusterID}
	cfg, err := f.Config(nil)
	if err != nil {
		return err
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, st := range c.ClusterInfo(ctx) {
		if st.Err != nil {
			return st.Err
		}
		if !st.Info.Ready {
			return errors.New(st.Address + " is not ready")
		}
	}
	return nil
}
