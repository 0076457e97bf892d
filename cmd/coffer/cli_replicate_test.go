package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// setupReplicateScript gives a cli_replicate*.txtar script three clusters
// configured in one CLI configuration (configure cli, then configure cli
// add-cluster): cluster-a (two HSMs, 127.0.0.11 and .12), cluster-b (two
// HSMs, .13 and .14) made from a copy of cluster-a's first HSM's data, as a
// restore from a backup makes a clone (the same masking key, another
// cluster id and certificates), and cluster-c (one HSM, .15), unrelated.
// None is activated. The script sees CA_A, CA_B, CA_C (trust anchors) and
// HSM_A1, HSM_B1, HSM_C1 (addresses).
func setupReplicateScript(env *testscript.Env) error {
	coffer, err := exec.LookPath("coffer")
	if err != nil {
		return err
	}
	type cluster struct {
		id, dir string
		addrs   []string
	}
	var clusters []*cluster
	ip := 11
	for _, c := range []struct {
		id string
		n  int
	}{{"cluster-a", 2}, {"cluster-b", 2}, {"cluster-c", 1}} {
		cl := &cluster{id: c.id, dir: filepath.Join(env.WorkDir, "."+c.id)}
		args := []string{"--dir", cl.dir, "--cluster-id", c.id, "--login-failure-delay", "1ms"}
		for i := 1; i <= c.n; i++ {
			a, err := cliFreeAddr(fmt.Sprintf("127.0.0.%d", ip))
			if err != nil {
				return err
			}
			ip++
			cl.addrs = append(cl.addrs, a)
			args = append(args, "--node", fmt.Sprintf("%d=%s", i, a))
		}
		if err := runHSMInit(args, io.Discard, io.Discard); err != nil {
			return fmt.Errorf("hsm init %s: %w", c.id, err)
		}
		clusters = append(clusters, cl)
	}
	a, b := clusters[0], clusters[1]

	// cluster-a's first HSM makes the masking key; cluster-b starts from a
	// copy of its data.
	stop, err := cliRunHSM(coffer, a.dir, 1)
	if err != nil {
		return err
	}
	err = cliWaitReady(a.addrs[:1], filepath.Join(a.dir, "customerCA.crt"))
	stop()
	if err != nil {
		return err
	}
	from, to := filepath.Join(a.dir, "hsm-1", "data"), filepath.Join(b.dir, "hsm-1", "data")
	if err := copyDir(from, to); err != nil {
		return err
	}

	config := filepath.Join(env.WorkDir, ".config")
	path := filepath.Join(config, "coffer", "cli.json")
	for i, cl := range clusters {
		for n := range cl.addrs {
			if err := cliStartHSM(env, coffer, cl.dir, n+1); err != nil {
				return err
			}
		}
		ca := filepath.Join(cl.dir, "customerCA.crt")
		if err := cliWaitReady(cl.addrs, ca); err != nil {
			return fmt.Errorf("%s: %w", cl.id, err)
		}
		args := []string{"cli"}
		if i > 0 {
			args = append(args, "add-cluster", "--cluster-id", cl.id)
		}
		for _, addr := range cl.addrs {
			args = append(args, "-a", addr)
		}
		args = append(args, "--hsm-ca-cert", ca, "--path", path)
		if err := runConfigure(context.Background(), args, io.Discard, io.Discard); err != nil {
			return fmt.Errorf("configure %s: %w", cl.id, err)
		}
		up := strings.ToUpper(cl.id[len("cluster-"):])
		env.Setenv("CA_"+up, ca)
		env.Setenv("HSM_"+up+"1", cl.addrs[0])
	}
	env.Setenv("XDG_CONFIG_HOME", config)
	env.Setenv("XDG_STATE_HOME", filepath.Join(env.WorkDir, ".state"))
	return nil
}

// cliRunHSM runs HSM i of dir until the returned stop is called (SIGTERM,
// then SIGKILL), which waits for it.
func cliRunHSM(coffer, dir string, i int) (stop func(), err error) {
	log, err := os.Create(filepath.Join(dir, fmt.Sprintf("hsm-%d.first.log", i)))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(coffer, "hsm", "run", "--config", filepath.Join(dir, fmt.Sprintf("hsm-%d.json", i)))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // owned here: waited for in stop
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
	}, nil
}

// copyDir copies the regular files of from into to (created), keeping
// their modes.
func copyDir(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}
