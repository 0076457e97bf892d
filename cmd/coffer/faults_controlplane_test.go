package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/client"
)

// TestFaultsControlPlane is the fault harness on a cluster the control
// plane runs (`coffer up`: the control plane and two HSM processes it
// provisions): under the same mixed load and model as TestFaults, each
// cycle either SIGKILLs the control plane and starts it again on the same
// data (the HSMs must keep serving, and be adopted, not restarted), or
// SIGKILLs an HSM, which the control plane must restart by itself. At the
// end both HSMs converge and every acknowledged write holds on each.
func TestFaultsControlPlane(t *testing.T) {
	cfg := faultsConfigFromFlags(t)
	if cfg.cycles == 0 && cfg.duration == 0 {
		cfg.cycles = 2
	}
	dir := t.TempDir()
	coffer := cofferBinary(t, dir)
	data := filepath.Join(dir, "data")
	up := startUp(t, coffer, data)
	ctx := t.Context()

	f, err := client.ReadFile(up.file.PKCS11Config)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := f.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	ccfg.CreateObjectMinimumNodes = 2
	ccfg.ReconnectInterval, ccfg.ReconnectAttempts = 100*time.Millisecond, client.ReconnectForever
	cl := dialConfigT(t, ccfg)
	cu := up.file.CryptoUser
	alice := loginT(t, cl, "crypto-user", cu.Username, cu.Password)
	admin := loginT(t, cl, "admin", up.file.Admin.Username, up.file.Admin.Password)
	if err := admin.CreateUser(ctx, faultBob, "crypto-user", "bob-password-1", nil); err != nil {
		t.Fatal(err)
	}
	pub, priv := genECPair(t, alice, "faults-sign", client.MinNodes(2))

	m := newFaultModel()
	load := &faultLoad{m: m, alice: alice, admin: admin, pub: pub, priv: priv, minNodes: 2, opLimit: 20 * time.Second}
	loadCtx, stopLoad := context.WithCancel(ctx)
	waitLoad := load.run(loadCtx, 3, cfg.seed)
	defer func() { stopLoad(); waitLoad() }()
	h := &faultHarness{}
	h.progress(t, m, 30)

	pidFiles, _ := filepath.Glob(filepath.Join(data, "controlplane", "hsm-side", "*", "*", "*", "node.pid"))
	if len(pidFiles) != 2 {
		t.Fatalf("%d node pid files, want 2", len(pidFiles))
	}
	// Nodes outlive a killed control plane: none may outlive the test.
	t.Cleanup(func() {
		for _, path := range pidFiles {
			if b, err := os.ReadFile(path); err == nil {
				if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 && syscall.Kill(n, 0) == nil {
					syscall.Kill(-n, syscall.SIGKILL)
				}
			}
		}
	})
	// pid reads an HSM's pid file; the control plane rewrites it when it
	// restarts the node, so an empty or partial file is read again.
	pid := func(path string) int {
		var n int
		pollUntil(t, "a pid in "+path, func() error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			n, err = strconv.Atoi(strings.TrimSpace(string(b)))
			return err
		})
		return n
	}
	r := rand.New(rand.NewPCG(cfg.seed, 11))
	t.Logf("control plane faults: seed %d, %d cycles, at least %s", cfg.seed, cfg.cycles, cfg.duration)
	kinds := []string{"kill-controlplane", "kill-hsm"}
	faults := map[string]int{}
	failedAfterServing := 0 // creations that failed once a killed HSM served again
	start := time.Now()
	cycle := 0
	for ; cycle < cfg.cycles || time.Since(start) < cfg.duration; cycle++ {
		if cycle%len(kinds) == 0 {
			kinds = shuffled(r, kinds)
		}
		kind := kinds[cycle%len(kinds)]
		var what string
		switch kind {
		case "kill-controlplane":
			before := []int{pid(pidFiles[0]), pid(pidFiles[1])}
			up.kill(t)
			h.progress(t, m, 30) // the HSMs serve without it
			up = startUp(t, coffer, data)
			after := []int{pid(pidFiles[0]), pid(pidFiles[1])}
			if !slices.Equal(before, after) {
				t.Errorf("the HSMs were restarted when the control plane came back: pids %v, then %v", before, after)
			}
			what = "the control plane killed and started again; its HSMs adopted"
		case "kill-hsm":
			path := pidFiles[r.IntN(len(pidFiles))]
			old := pid(path)
			failedAtKill := m.failedCount("create")
			if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
				t.Fatalf("kill HSM node %d: %v", old, err)
			}
			took := pollUntil(t, "the control plane restarting the killed HSM", func() error {
				if n := pid(path); n == old {
					return fmt.Errorf("HSM node %d is not restarted yet", old)
				}
				return nil
			})
			// Serving again (its client link back) before the next fault.
			nf, err := readRawHSMFile(filepath.Join(filepath.Dir(path), "hsm.json"))
			if err != nil {
				t.Fatal(err)
			}
			one := ccfg
			one.HSMs, one.CreateObjectMinimumNodes = []string{nf.Listen}, 1
			ready := pollUntil(t, "the restarted HSM serving", func() error {
				cl, err := client.Dial(ctx, one)
				if err != nil {
					return err
				}
				defer cl.Close()
				return loginOnce(ctx, cl, "crypto-user", cu.Username, cu.Password)
			})
			failedAtServing := m.failedCount("create")
			h.progress(t, m, 30)
			afterServing := m.failedCount("create") - failedAtServing
			failedAfterServing += afterServing
			what = fmt.Sprintf("HSM node %d killed, restarted by the control plane after %s, serving %s later; "+
				"failed creations: %d while it was down, %d once it served",
				old, took.Round(time.Millisecond), ready.Round(time.Millisecond), failedAtServing-failedAtKill, afterServing)
		}
		faults[kind]++
		t.Logf("cycle %d: %s (%s); %d operations so far", cycle+1, kind, what, m.ops.Load())
	}
	stopLoad()
	waitLoad()
	loadTime := time.Since(start)

	var views []*faultView
	for i, addr := range up.file.HSMAddresses {
		one := ccfg
		one.HSMs, one.CreateObjectMinimumNodes = []string{addr}, 1
		var cl *client.Cluster
		pollUntil(t, "HSM "+addr+" answering", func() error { // it may be restarting
			var err error
			cl, err = client.Dial(ctx, one)
			return err
		})
		t.Cleanup(func() { cl.Close() })
		views = append(views, &faultView{id: uint32(i + 1), cl: cl,
			alice: c0login(t, cl, "crypto-user", cu.Username, cu.Password),
			admin: c0login(t, cl, "admin", up.file.Admin.Username, up.file.Admin.Password)})
	}
	took := pollUntil(t, "both HSMs holding the same objects and users", func() error {
		for _, v := range views {
			if err := v.read(ctx); err != nil {
				return err
			}
		}
		return converged(views[0], views[1])
	})
	losses := m.check(ctx, views, cu.Username, map[string]bool{"faults-sign": true})
	for _, l := range losses {
		t.Errorf("loss: %s", l)
	}
	var fk []string
	for _, k := range slices.Sorted(maps.Keys(faults)) {
		fk = append(fk, fmt.Sprintf("%s %d", k, faults[k]))
	}
	t.Logf("control plane fault figures: %d cycles in %s; %d operations; faults: %s; converged %s after the load; "+
		"%d creations failed once a killed HSM served again; losses: %d\n%s",
		cycle, loadTime.Round(time.Millisecond), m.ops.Load(), strings.Join(fk, ", "), took.Round(time.Millisecond),
		failedAfterServing, len(losses), m.summary())
}

// c0login logs in, waiting until the HSM answers (it may still be catching
// up after a restart).
func c0login(t *testing.T, cl *client.Cluster, role, user, password string) *client.Session {
	t.Helper()
	var s *client.Session
	pollUntil(t, user+" logs in", func() error {
		var err error
		s, err = cl.Login(t.Context(), role, user, password)
		return err
	})
	t.Cleanup(func() { _ = s.Close(context.WithoutCancel(t.Context())) })
	return s
}
