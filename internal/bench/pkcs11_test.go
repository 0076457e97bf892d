//go:build cgo

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/testtool"
)

const softHSMPath = "/usr/lib/softhsm/libsofthsm2.so"

// softHSMToken makes a SoftHSMv2 token "bench" (user PIN 1234) in a
// directory of the test and points SOFTHSM2_CONF at it. Without the
// softhsm2 package it skips, or fails when COFFER_REQUIRE_TOOLS is set.
func softHSMToken(t *testing.T) {
	t.Helper()
	util := testtool.Path(t, "softhsm2-util")
	testtool.File(t, softHSMPath, "softhsm2")
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := "directories.tokendir = " + filepath.Join(dir, "tokens") + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, util, "--init-token", "--free", "--label", "bench", "--so-pin", "5678", "--pin", "1234").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
}

// tokenObjects counts the objects labelled Label on the token, loading
// the module afresh (the Target must be closed).
func tokenObjects(t *testing.T) int {
	t.Helper()
	p := pkcs11.New(softHSMPath)
	if p == nil {
		t.Fatal("loading SoftHSMv2 failed")
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer p.Finalize()
	slots, err := p.GetSlotList(true)
	if err != nil || len(slots) == 0 {
		t.Fatalf("slots %v: %v", slots, err)
	}
	s, err := p.OpenSession(slots[0], pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(s)
	if err := p.Login(s, pkcs11.CKU_USER, "1234"); err != nil {
		t.Fatal(err)
	}
	defer p.Logout(s)
	if err := p.FindObjectsInit(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, Label)}); err != nil {
		t.Fatal(err)
	}
	objs, _, err := p.FindObjects(s, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.FindObjectsFinal(s); err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// TestPKCS11SoftHSM runs every operation but the slow RSA generation
// through SoftHSMv2, with session and then token keys, and finds no object
// left on the token afterwards.
func TestPKCS11SoftHSM(t *testing.T) {
	softHSMToken(t)
	if _, err := OpenPKCS11(PKCS11Config{Path: softHSMPath, PIN: "9999"}); err == nil {
		t.Fatal("a wrong PIN logged in")
	}
	ops, err := ParseOps(DefaultOps())
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []bool{false, true} {
		t.Run(fmt.Sprintf("token=%v", token), func(t *testing.T) {
			tg, err := OpenPKCS11(PKCS11Config{Path: softHSMPath, PIN: "1234"})
			if err != nil {
				t.Fatal(err)
			}
			info := tg.Describe(t.Context())
			if info.Kind != "pkcs11" || info.Slot == nil || info.Module != softHSMPath {
				t.Errorf("target %+v", info)
			}
			var progress int
			cells, err := Run(t.Context(), tg, Config{Ops: ops, Threads: []int{1, 3}, Duration: 60 * time.Millisecond,
				OpTimeout: 10 * time.Second, TokenKeys: token, Progress: func(Progress) { progress++ }})
			if cerr := tg.Close(); cerr != nil {
				t.Errorf("Close: %v", cerr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cells) != 2*len(ops) || progress < len(cells) {
				t.Fatalf("%d cells, %d progress reports", len(cells), progress)
			}
			for _, c := range cells {
				if c.Ops == 0 || c.Errors != 0 || c.OpsPerSec <= 0 || c.Latency.P50 <= 0 || c.Latency.P999 < c.Latency.P50 {
					t.Errorf("%s at %d threads: %+v", c.Op, c.Threads, c)
				}
				op, _ := ParseOps([]string{c.Op})
				if want := op[0].Keys(token); c.Keys != want {
					t.Errorf("%s: keys %s, want %s", c.Op, c.Keys, want)
				}
			}
			if n := tokenObjects(t); n != 0 {
				t.Errorf("%d objects left on the token", n)
			}
		})
	}
}

// TestPKCS11Cancel cancels a run in the middle of a token key generation
// cell: Run returns the cancellation, and the keys made are gone.
func TestPKCS11Cancel(t *testing.T) {
	softHSMToken(t)
	tg, err := OpenPKCS11(PKCS11Config{Path: softHSMPath, PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := ParseOps([]string{"aes-keygen-token", "ecdsa-p256"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cells, err := Run(ctx, tg, Config{Ops: ops, Threads: []int{2, 2}, Duration: 10 * time.Second, OpTimeout: 5 * time.Second, TokenKeys: true,
		Progress: func(p Progress) {
			if p.Ops > 20 {
				cancel()
			}
		}})
	if cerr := tg.Close(); cerr != nil {
		t.Errorf("Close: %v", cerr)
	}
	if err != context.Canceled {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if len(cells) != 1 || !cells[0].Interrupted || cells[0].Ops == 0 || cells[0].Seconds > 5 {
		t.Errorf("cells %+v", cells)
	}
	if n := tokenObjects(t); n != 0 {
		t.Errorf("%d objects left on the token", n)
	}
}

// TestPKCS11ErrorsCounted runs an operation SoftHSMv2 refuses (HMAC with
// an AES key): every attempt is an error, the first one is kept, and the
// threads back off instead of spinning.
func TestPKCS11ErrorsCounted(t *testing.T) {
	softHSMToken(t)
	tg, err := OpenPKCS11(PKCS11Config{Path: softHSMPath, PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	bad := Op{Name: "hmac-with-aes-key", Kind: KindSign, Key: KeySpec{Alg: KeyAES, Bits: 256}, Mech: ck.CKM_SHA256_HMAC, Data: 32}
	cells, err := Run(t.Context(), tg, Config{Ops: []Op{bad}, Threads: []int{2}, Duration: 300 * time.Millisecond, OpTimeout: 5 * time.Second})
	if cerr := tg.Close(); cerr != nil {
		t.Errorf("Close: %v", cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := cells[0]
	if c.Ops != 0 || c.Errors == 0 || !strings.Contains(c.FirstError, "C_SignInit") {
		t.Fatalf("cell %+v", c)
	}
	// Backing off 1, 2, 4 .. 100 ms, two threads make at most a few dozen
	// attempts in 300ms; spinning would make thousands.
	if c.Errors > 40 {
		t.Errorf("%d errors in 300ms at 2 threads: the threads do not back off", c.Errors)
	}
	if n := tokenObjects(t); n != 0 {
		t.Errorf("%d objects left on the token", n)
	}
}
