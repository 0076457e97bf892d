package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/client"
)

// The proof tests run the library inside programs nobody here wrote, against
// a real two-HSM cluster of `coffer hsm run` processes started once for the
// package (TestMain).

const (
	adminPass = "admin-password-1" // the admin's password after activation
	cuUser    = "alice"
	cuPass    = "alice-password-1"
	userPIN   = cuUser + ":" + cuPass
)

// env is the package's cluster and the files tests pass to programs.
var env struct {
	dir    string // everything below lives here
	lib    string // the built libcoffer_pkcs11.so
	config string // pkcs11.json for the cluster
	log    string // the library's log file
	err    error  // why the cluster could not be set up
}

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "coffer-pkcs11-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		env.dir = dir
		stop, err := setUp(dir)
		defer stop()
		if err != nil {
			env.err = err
		}
		return m.Run()
	}()
	os.Exit(code)
}

// needCluster skips nothing: a test that needs the cluster fails without it.
func needCluster(t *testing.T) {
	t.Helper()
	if env.err != nil {
		t.Fatalf("test cluster: %v", env.err)
	}
	t.Setenv("COFFER_PKCS11_CONFIG", env.config)
}

func freeAddr(ip string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func goBuild(args ...string) error {
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// setUp builds coffer and the library (unless COFFER_BIN and COFFER_LIB
// name them, as make unit does), starts two HSMs, activates the
// cluster, creates the crypto user and writes the library's configuration.
func setUp(dir string) (stop func(), err error) {
	var procs []*exec.Cmd
	stop = func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}
	coffer := filepath.Join(dir, "coffer")
	env.lib = filepath.Join(dir, "libcoffer_pkcs11.so")
	if bin := os.Getenv("COFFER_BIN"); bin != "" { // a coffer built already (e.g. by make build)
		coffer = bin
	} else if err := goBuild("-o", coffer, "../coffer"); err != nil {
		return stop, err
	}
	if lib := os.Getenv("COFFER_LIB"); lib != "" { // the library built already (make build)
		env.lib = lib
	} else if err := goBuild("-buildmode=c-shared", "-o", env.lib, "."); err != nil {
		return stop, err
	}
	cdir := filepath.Join(dir, "cluster")
	var addrs []string
	// TestMiekgLogin fails logins on purpose: a short fixed pause keeps the
	// per-address pacing (tested in internal/node) out of its way.
	args := []string{"hsm", "init", "--dir", cdir, "--login-failure-delay", "1ms"}
	for id := 1; id <= 2; id++ {
		a, err := freeAddr(fmt.Sprintf("127.0.0.%d", 10+id))
		if err != nil {
			return stop, err
		}
		addrs = append(addrs, a)
		args = append(args, "--node", fmt.Sprintf("%d=%s", id, a))
	}
	if out, err := exec.Command(coffer, args...).CombinedOutput(); err != nil {
		return stop, fmt.Errorf("coffer hsm init: %v\n%s", err, out)
	}
	for id := 1; id <= 2; id++ {
		log, err := os.Create(filepath.Join(dir, "hsm-"+strconv.Itoa(id)+".log"))
		if err != nil {
			return stop, err
		}
		p := exec.Command(coffer, "hsm", "run", "--config", filepath.Join(cdir, fmt.Sprintf("hsm-%d.json", id)))
		p.Stdout, p.Stderr = log, log
		p.SysProcAttr = hsmProcAttr()
		if err := p.Start(); err != nil {
			return stop, err
		}
		log.Close()
		procs = append(procs, p)
	}
	env.log = filepath.Join(dir, "pkcs11.log")
	f := &client.File{
		HSMs: addrs, HSMCACert: filepath.Join(cdir, "customerCA.crt"), ClusterID: "cluster-local",
		CreateObjectMinimumNodes: 2,
		Logging:                  client.Logging{File: env.log, Level: "debug"},
	}
	env.config = filepath.Join(dir, "pkcs11.json")
	if err := f.WriteFile(env.config); err != nil {
		return stop, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := f.Config(nil)
	if err != nil {
		return stop, err
	}
	cfg.ReconnectInterval = 200 * time.Millisecond
	var cl *client.Cluster
	for { // until both HSMs answer
		cl, err = client.Dial(ctx, cfg)
		if err == nil {
			up := 0
			for _, st := range cl.ClusterInfo(ctx) {
				if st.Info != nil && st.Info.Ready {
					up++
				}
			}
			if up == 2 {
				break
			}
			cl.Close()
		}
		select {
		case <-ctx.Done():
			return stop, fmt.Errorf("the HSMs did not come up: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer cl.Close()
	s, err := cl.Login(ctx, "admin", "admin", "password")
	if err != nil {
		return stop, fmt.Errorf("pre-admin login: %w", err)
	}
	defer s.Close(ctx)
	if err := s.Activate(ctx, adminPass); err != nil {
		return stop, fmt.Errorf("activate: %w", err)
	}
	for { // the activation reaches the other HSM by sync
		err := s.CreateUser(ctx, cuUser, "crypto-user", cuPass, nil)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return stop, fmt.Errorf("create user: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// The user must be known to both HSMs before tests log in.
	for {
		s2, err := cl.Login(ctx, "crypto-user", cuUser, cuPass)
		if err == nil {
			s2.Close(ctx)
			break
		}
		select {
		case <-ctx.Done():
			return stop, fmt.Errorf("crypto user login: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return stop, nil
}

// run runs a program with the library's configuration and returns its
// combined output; it fails the test if the program fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Env = append(os.Environ(), "COFFER_PKCS11_CONFIG="+env.config)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s\n--- library log tail:\n%s", name, strings.Join(args, " "), err, out, logTail())
	}
	return string(out)
}

func logTail() string {
	b, _ := os.ReadFile(env.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
