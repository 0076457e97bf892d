package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/hsm"
)

// TestFaults is the fault harness (`make faults` runs its long form; the
// short form, one cycle of each fault, runs with the other tests). Three
// real HSM processes serve a mixed load (key creation with
// create_object_minimum_nodes 2, key use, signing, sharing, destruction,
// user changes) while faults are injected one per cycle and healed:
//
//   - kill-hsm: SIGKILL of a random HSM, restarted from its data;
//   - partition-hsm: one HSM cut off from both peers (its links held or
//     refused by fault proxies), clients still reaching it;
//   - partition-client: the client's link to one HSM refused;
//   - disk-full: HSM 3's data directory, a tmpfs of its own, filled; its
//     writes must fail with CKR_DEVICE_MEMORY and work again once the tmpfs
//     grows.
//
// Every link goes through a fault proxy (faultproxy_test.go): HSM i reaches
// HSM j through proxy (i, j), the client reaches HSM j through proxy j.
// At the end every HSM must hold the same objects and users, and the model
// (faults_model_test.go) checks every acknowledged write on each of them.
// The figures (cycles, operations, faults by kind, losses) are logged.
//
// Flags (after -args): -faults.cycles N, -faults.duration D (the run goes on
// until both are reached), -faults.seed S. COFFER_FAULTS_CYCLES and
// COFFER_FAULTS_DURATION set the same.
func TestFaults(t *testing.T) {
	cfg := faultsConfigFromFlags(t)
	h := newFaultHarness(t)
	h.run(t, cfg)
}

var (
	faultsCycles   = flag.Int("faults.cycles", 0, "TestFaults: fault cycles (0: one of each fault)")
	faultsDuration = flag.Duration("faults.duration", 0, "TestFaults: run cycles for at least this long")
	faultsSeed     = flag.Uint64("faults.seed", 0, "TestFaults: random seed (0: from the clock)")
)

type faultsConfig struct {
	cycles   int
	duration time.Duration
	seed     uint64
}

func faultsConfigFromFlags(t *testing.T) faultsConfig {
	cfg := faultsConfig{cycles: *faultsCycles, duration: *faultsDuration, seed: *faultsSeed}
	if v := os.Getenv("COFFER_FAULTS_CYCLES"); v != "" && cfg.cycles == 0 {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("COFFER_FAULTS_CYCLES: %v", err)
		}
		cfg.cycles = n
	}
	if v := os.Getenv("COFFER_FAULTS_DURATION"); v != "" && cfg.duration == 0 {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("COFFER_FAULTS_DURATION: %v", err)
		}
		cfg.duration = d
	}
	if cfg.seed == 0 {
		cfg.seed = uint64(time.Now().UnixNano())
	}
	return cfg
}

var faultHSMs = []uint32{1, 2, 3}

// diskNode is the HSM whose data directory is a small tmpfs.
const diskNode = 3

// diskSize is the tmpfs size of diskNode's data directory (its store,
// node key and audit log).
const diskSize = 8 << 20

type faultHarness struct {
	c       *testCluster
	peer    map[[2]uint32]*faultProxy // (from, to): from's link to to
	front   map[uint32]*faultProxy    // the client's link to an HSM
	disk    string                    // diskNode's data directory (a tmpfs), "" if mounting failed
	diskMsg string                    // why there is no disk-full fault
	logs    string                    // the client's log file
}

func newFaultHarness(t *testing.T) *faultHarness {
	if runtime.GOOS != "linux" {
		t.Skip("the fault harness needs Linux: loopback addresses of its own per HSM and tmpfs")
	}
	c := newCluster(t, faultHSMs...)
	h := &faultHarness{c: c, peer: map[[2]uint32]*faultProxy{}, front: map[uint32]*faultProxy{}}
	for _, to := range faultHSMs {
		h.front[to] = newFaultProxy(t, loopbackOf(to), c.addr(to))
		for _, from := range faultHSMs {
			if from != to {
				h.peer[[2]uint32{from, to}] = newFaultProxy(t, loopbackOf(to), c.addr(to))
			}
		}
	}
	for _, from := range faultHSMs {
		c.editConfig(t, from, func(f *hsmFile) {
			for i := range f.Peers {
				f.Peers[i].Address = h.peer[[2]uint32{from, f.Peers[i].ID}].Addr()
			}
		})
	}
	h.mountDisk(t)
	h.logs = filepath.Join(c.logs, "client.log")
	return h
}

// mountDisk puts diskNode's data directory on a tmpfs of diskSize. Without
// permission to mount (not root) the harness runs without the disk-full
// fault and says so.
func (h *faultHarness) mountDisk(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", diskSize), "coffer-faults", dir).CombinedOutput()
	if err != nil {
		h.diskMsg = fmt.Sprintf("no disk-full fault: mounting a tmpfs failed (needs root): %v: %s", err, bytes.TrimSpace(out))
		t.Log(h.diskMsg)
		return
	}
	t.Cleanup(func() {
		h.c.stopAll() // the node must be gone before its filesystem
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	h.disk = dir
	h.c.editConfig(t, diskNode, func(f *hsmFile) { f.DataDir = dir })
}

func (h *faultHarness) resizeDisk(t *testing.T, size int) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", size), h.disk).CombinedOutput(); err != nil {
		t.Fatalf("remount %s with size %d: %v: %s", h.disk, size, err, out)
	}
}

// fillDisk writes a ballast file on the tmpfs until it is full.
func (h *faultHarness) fillDisk(t *testing.T) {
	t.Helper()
	f, err := os.Create(filepath.Join(h.disk, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func (h *faultHarness) frontConfig(minNodes int) client.Config {
	cfg := h.c.clientConfig(minNodes)
	for _, id := range faultHSMs {
		cfg.HSMs = append(cfg.HSMs, h.front[id].Addr())
	}
	return cfg
}

func (h *faultHarness) run(t *testing.T, cfg faultsConfig) {
	c := h.c
	ctx := t.Context()
	if keep := os.Getenv("COFFER_FAULTS_LOGS"); keep != "" {
		// Runs before the cluster's cleanups, while its logs exist.
		t.Cleanup(func() {
			if t.Failed() {
				out, err := exec.Command("cp", "-r", c.logs, keep).CombinedOutput()
				t.Logf("logs kept in %s: %v %s", keep, err, out)
			}
		})
	}
	c.startAll(t, faultHSMs...)
	admin1 := c.activate(t, 1)
	if err := admin1.CreateUser(ctx, faultBob, "crypto-user", "bob-password-1", nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range faultHSMs[1:] {
		c.loginWhenKnown(t, id, "crypto-user", faultBob, "bob-password-1")
	}
	for _, p := range h.peer {
		if p.Accepted() == 0 {
			pollUntil(t, "every HSM link through its proxy", func() error {
				if p.Accepted() == 0 {
					return errors.New("no connection through a peer proxy yet")
				}
				return nil
			})
		}
	}

	logf, err := os.OpenFile(h.logs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ccfg := h.frontConfig(2)
	ccfg.Logger = slog.New(slog.NewTextHandler(logf, nil))
	cl := c.dialConfig(t, ccfg)
	alice := loginT(t, cl, "crypto-user", testCU, testCUPW)
	admin := loginT(t, cl, "admin", hsm.DefaultAdminName, testAdminPW)
	pub, priv := genECPair(t, alice, "faults-sign", client.MinNodes(3))
	// A session on the disk node alone, opened while it has space: the
	// disk-full fault writes through it.
	alice3 := loginT(t, c.dial(t, 1, diskNode), "crypto-user", testCU, testCUPW)

	m := newFaultModel()
	load := &faultLoad{m: m, alice: alice, admin: admin, pub: pub, priv: priv, minNodes: 2, opLimit: 20 * time.Second}
	loadCtx, stopLoad := context.WithCancel(ctx)
	waitLoad := load.run(loadCtx, 4, cfg.seed)
	defer func() { stopLoad(); waitLoad() }()

	kinds := []string{"kill-hsm", "partition-hsm", "partition-client", "disk-full"}
	if h.disk == "" {
		kinds = kinds[:3]
	}
	cycles := cfg.cycles
	if cycles == 0 && cfg.duration == 0 {
		cycles = len(kinds)
	}
	r := rand.New(rand.NewPCG(cfg.seed, 7))
	t.Logf("fault harness: seed %d (-faults.seed to repeat), %d cycles, at least %s", cfg.seed, cycles, cfg.duration)
	faults := map[string]int{}
	start := time.Now()
	h.progress(t, m, 40) // the load runs before the first fault
	cycle := 0
	for ; cycle < cycles || time.Since(start) < cfg.duration; cycle++ {
		if cycle%len(kinds) == 0 { // every kind once per len(kinds) cycles
			kinds = shuffled(r, kinds)
		}
		kind := kinds[cycle%len(kinds)]
		failedBefore := m.failedCount("create")
		what := h.inject(t, r, kind, m, alice3)
		faults[kind]++
		t.Logf("cycle %d: %s (%s); %d operations so far, %d failed creations in the cycle",
			cycle+1, kind, what, m.ops.Load(), m.failedCount("create")-failedBefore)
	}
	stopLoad()
	waitLoad()
	loadTime := time.Since(start)

	// The end: every link passes, every HSM runs; they converge and the
	// model holds on each.
	for _, p := range h.peer {
		p.Pass()
	}
	for _, id := range faultHSMs {
		h.front[id].Pass()
		if err := c.readyErr(t, id); err != nil {
			t.Errorf("HSM %d is not ready at the end of the load: %v", id, err)
			if c.proc(t, id).exited() {
				c.start(t, id)
			}
			c.waitReady(t, id)
		}
	}
	views := make([]*faultView, 0, len(faultHSMs))
	for _, id := range faultHSMs {
		cl := c.dial(t, 1, id)
		views = append(views, &faultView{id: id, cl: cl,
			alice: loginT(t, cl, "crypto-user", testCU, testCUPW),
			admin: loginT(t, cl, "admin", hsm.DefaultAdminName, testAdminPW)})
	}
	took := pollUntil(t, "every HSM holding the same objects and users", func() error {
		for _, v := range views {
			if err := v.read(ctx); err != nil {
				return err
			}
		}
		for _, v := range views[1:] {
			if err := converged(views[0], v); err != nil {
				var held []string
				for _, v := range views {
					held = append(held, fmt.Sprintf("HSM %d lists %d, its store holds %v", v.id, len(v.objects),
						c.metricValue(t, v.id, "HsmKeysTokenOccupied")))
				}
				return fmt.Errorf("%w (token objects: %s; in the history: %s)", err, strings.Join(held, ", "), m.describe(err.Error()))
			}
		}
		return nil
	})
	losses := m.check(ctx, views, testCU, map[string]bool{"faults-sign": true})
	for _, l := range losses {
		t.Errorf("loss: %s", l)
	}
	var fk []string
	for _, k := range slices.Sorted(maps.Keys(faults)) {
		fk = append(fk, fmt.Sprintf("%s %d", k, faults[k]))
	}
	acked := 0
	for _, k := range m.keys {
		if k.created == outAcked && k.deleted != outAcked {
			acked++
		}
	}
	t.Logf("fault harness figures: %d cycles in %s; %d operations; faults: %s; converged %s after the load; "+
		"%d acknowledged keys and %d users checked on %d HSMs; losses: %d\n%s",
		cycle, loadTime.Round(time.Millisecond), m.ops.Load(), strings.Join(fk, ", "), took.Round(time.Millisecond),
		acked, len(m.users), len(views), len(losses), m.summary())
	if h.diskMsg != "" {
		t.Log(h.diskMsg)
	}
	h.verifyAudit(t)
}

// verifyAudit stops every HSM and checks its audit log with its key and
// anchor (`coffer audit verify --config`): kills, partitions and full disks
// must leave every chain whole and reaching its anchor.
func (h *faultHarness) verifyAudit(t *testing.T) {
	for _, id := range faultHSMs {
		h.c.stop(t, id)
		out, err := exec.Command(h.c.bin, "audit", "verify", "--config", h.c.configPath(id)).CombinedOutput()
		if err != nil {
			t.Errorf("coffer audit verify of HSM %d: %v\n%s", id, err, out)
			continue
		}
		t.Logf("HSM %d: %s", id, bytes.TrimSpace(out))
	}
}

func shuffled(r *rand.Rand, s []string) []string {
	out := slices.Clone(s)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// progress waits until the load has finished n more operations, or 20 s
// have passed (a stalled load is in the figures, not a hang).
func (h *faultHarness) progress(t *testing.T, m *faultModel, n int64) {
	t.Helper()
	want := m.ops.Load() + n
	deadline := time.Now().Add(20 * time.Second)
	for m.ops.Load() < want {
		if time.Now().After(deadline) {
			t.Logf("the load made only %d of %d operations in 20 s", n-(want-m.ops.Load()), n)
			return
		}
		select {
		case <-t.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// inject runs one fault: inject, let the load run, heal, wait until healed.
func (h *faultHarness) inject(t *testing.T, r *rand.Rand, kind string, m *faultModel, alice3 *client.Session) string {
	c := h.c
	victim := faultHSMs[r.IntN(len(faultHSMs))]
	switch kind {
	case "kill-hsm":
		c.kill(t, victim)
		h.progress(t, m, 30)
		c.start(t, victim)
		took := c.waitReady(t, victim)
		h.progress(t, m, 10)
		return fmt.Sprintf("HSM %d killed, ready %s after its restart", victim, took.Round(time.Millisecond))
	case "partition-hsm":
		mode, set := "held", (*faultProxy).Cut
		if r.IntN(2) == 0 {
			mode, set = "refused", (*faultProxy).Drop
		}
		for _, other := range faultHSMs {
			if other != victim {
				set(h.peer[[2]uint32{victim, other}])
				set(h.peer[[2]uint32{other, victim}])
			}
		}
		h.progress(t, m, 40)
		for _, other := range faultHSMs {
			if other != victim {
				h.peer[[2]uint32{victim, other}].Pass()
				h.peer[[2]uint32{other, victim}].Pass()
			}
		}
		h.progress(t, m, 10)
		return fmt.Sprintf("HSM %d cut off from its peers, links %s", victim, mode)
	case "partition-client":
		h.front[victim].Drop()
		h.progress(t, m, 40)
		h.front[victim].Pass()
		h.progress(t, m, 10)
		return fmt.Sprintf("the client's link to HSM %d refused", victim)
	case "disk-full":
		return h.diskFull(t, m, alice3)
	}
	t.Fatalf("unknown fault %q", kind)
	return ""
}

// diskFull fills diskNode's tmpfs under load. Writes through that HSM alone
// must then fail with CKR_DEVICE_MEMORY (after the free pages in its
// database file are used), the HSM must stay up, and writes through it must
// work again once the tmpfs grows. Keys the probe made are in the model.
func (h *faultHarness) diskFull(t *testing.T, m *faultModel, s *client.Session) string {
	ctx := t.Context()
	h.fillDisk(t)
	probe := func(n int) error {
		label := fmt.Sprintf("fk-disk-%d-%d", time.Now().UnixNano(), n)
		k := &faultKey{label: label, created: outEither}
		m.mu.Lock()
		m.keys[label] = k
		m.mu.Unlock()
		octx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		id, err := s.GenerateKey(octx, mechAESKeyGen, aesTokenTemplate(label), client.MinNodes(1))
		if err == nil {
			m.mu.Lock()
			k.id, k.created = id, outAcked
			m.mu.Unlock()
		}
		m.record("disk probe", err)
		return err
	}
	var err error
	n := 0
	for ; n < 2000 && err == nil; n++ {
		err = probe(n)
	}
	refused := err
	if !refusedWith(refused, ck.CKR_DEVICE_MEMORY) {
		t.Errorf("a write to HSM %d with a full disk: %v, want CKR_DEVICE_MEMORY", diskNode, refused)
	}
	h.progress(t, m, 30)
	if err := h.c.readyErr(t, diskNode); err != nil {
		t.Errorf("HSM %d with a full disk: %v", diskNode, err)
		if h.c.proc(t, diskNode).exited() {
			h.resizeDisk(t, 2*diskSize)
			os.Remove(filepath.Join(h.disk, "ballast"))
			h.resizeDisk(t, diskSize)
			h.c.start(t, diskNode)
			h.c.waitReady(t, diskNode)
			return fmt.Sprintf("HSM %d died on a full disk", diskNode)
		}
	}
	// Space returns: the tmpfs grows (later the ballast goes and it shrinks
	// back, ready for the next time). A new login through that HSM writes
	// its audit record durably, without the HSM restarting.
	h.resizeDisk(t, 2*diskSize)
	what := fmt.Sprintf("HSM %d's disk full after %d writes, refused with %v", diskNode, n-1, ck.CKR_DEVICE_MEMORY)
	// No restart: the audit log retries by itself (internal/audit), so the
	// login's durable record must be written now.
	if err := loginOnce(ctx, h.c.dial(t, 1, diskNode), "crypto-user", testCU, testCUPW); err != nil {
		t.Errorf("login through HSM %d once its disk grew, without a restart: %v", diskNode, err)
	}
	took := pollUntil(t, fmt.Sprintf("a write to HSM %d once its disk has grown", diskNode), func() error { return probe(-1) })
	what += fmt.Sprintf("; writes again %s after", took.Round(time.Millisecond))
	if err := os.Remove(filepath.Join(h.disk, "ballast")); err != nil {
		t.Fatal(err)
	}
	h.resizeDisk(t, diskSize)
	h.progress(t, m, 10)
	return what
}
