package main

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	"github.com/coffer-hsm/coffer/internal/node"
)

// ensureFIPSModule goes on in BoringCrypto or Go's enforced module; it
// starts again with fips140=only added to GODEBUG otherwise (a build whose
// default is fips140=on included), and refuses when GODEBUG sets fips140
// otherwise, to on included (or starting again fails).
func TestEnsureFIPSModule(t *testing.T) {
	var execs [][]string
	exec := func(_ string, _, env []string) error {
		execs = append(execs, env)
		return errors.New("exec refused")
	}
	native := cryptobackend.Info{Name: cryptobackend.Go}
	on := cryptobackend.Info{Name: cryptobackend.Go, FIPS140: true, ModuleVersion: "v1.26.0"}
	only := cryptobackend.Info{Name: cryptobackend.Go, FIPS140: true, Enforced: true, ModuleVersion: "latest"}
	for _, tc := range []struct {
		cb      cryptobackend.Info
		godebug string
	}{{cryptobackend.Info{Name: cryptobackend.BoringCrypto}, ""}, {only, ""}, {only, "fips140=only"}} {
		if err := ensureFIPSModule(tc.cb, []string{"GODEBUG=" + tc.godebug}, io.Discard, exec); err != nil || len(execs) != 0 {
			t.Fatalf("%s, GODEBUG=%s: %v, %d execs", tc.cb, tc.godebug, err, len(execs))
		}
	}
	for _, tc := range []struct {
		cb      cryptobackend.Info
		godebug string
	}{{native, "fips140=off"}, {native, "x509sha1=1,fips140=on"}, {on, "fips140=on"}} {
		err := ensureFIPSModule(tc.cb, []string{"HOME=/h", "GODEBUG=" + tc.godebug}, io.Discard, exec)
		if !errors.Is(err, node.ErrNoFIPSModule) || len(execs) != 0 {
			t.Fatalf("%s, GODEBUG=%s: %v, %d execs; want ErrNoFIPSModule and no exec", tc.cb, tc.godebug, err, len(execs))
		}
	}
	err := ensureFIPSModule(native, []string{"HOME=/h", "GODEBUG=x509sha1=1"}, io.Discard, exec)
	if !errors.Is(err, node.ErrNoFIPSModule) || len(execs) != 1 {
		t.Fatalf("exec refused: %v, %d execs", err, len(execs))
	}
	if want := []string{"HOME=/h", "GODEBUG=x509sha1=1,fips140=only"}; !slices.Equal(execs[0], want) {
		t.Errorf("started again with %q, want %q", execs[0], want)
	}
	_ = ensureFIPSModule(on, []string{"HOME=/h"}, io.Discard, exec) // a GOFIPS140 build: on by default
	if want := []string{"HOME=/h", "GODEBUG=fips140=only"}; len(execs) != 2 || !slices.Equal(execs[1], want) {
		t.Errorf("a build in FIPS 140-3 mode by default started again with %q, want %q", execs[1:], want)
	}
}

// TestFIPSHSMRunsInFIPSModule: an HSM whose config says FIPS runs in a FIPS
// 140-3 module, as the node itself reports (NodeInfo and coffer_build_info),
// whatever the binary: this test binary is built on Go's own cryptography
// without FIPS 140-3 mode, so the HSM starts itself again in it, enforced
// (fips140=only). With
// GODEBUG setting fips140 otherwise, it does not start.
func TestFIPSHSMRunsInFIPSModule(t *testing.T) {
	c := newCluster(t, 1)
	c.editConfig(t, 1, func(f *hsmFile) { f.FIPS = true })
	c.start(t, 1)
	c.waitReady(t, 1)
	st := c.dial(t, 1, 1).ClusterInfo(t.Context())
	if len(st) != 1 || st[0].Info == nil {
		t.Fatalf("cluster info: %+v", st)
	}
	info := st[0].Info
	own := cryptobackend.Current()
	want := own.String()
	if !own.FIPSModeReady() {
		want = "go fips140=only (Go Cryptographic Module " // started again
	}
	if !info.FIPS || !strings.HasPrefix(info.CryptoBackend, want) {
		t.Errorf("FIPS HSM reports fips %v, crypto %q; want fips and crypto %q…", info.FIPS, info.CryptoBackend, want)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + c.metricsAddr(t, 1) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `fips_mode="true"`) || !strings.Contains(string(body), `fips_module="`) || strings.Contains(string(body), `fips_module=""`) {
		t.Errorf("coffer_build_info does not name the FIPS module: %s", grepLines(string(body), "coffer_build_info"))
	}
	c.stop(t, 1)
	if own.FIPSModeReady() {
		return // nothing to refuse in this binary
	}

	t.Setenv("GODEBUG", "fips140=off")
	p := c.start(t, 1)
	select {
	case <-p.done:
	case <-time.After(clusterWaitLimit):
		t.Fatal("a FIPS HSM with GODEBUG=fips140=off started")
	}
	if out := c.output(t, 1); p.err == nil || !strings.Contains(out, "needs a FIPS 140-3 module") {
		t.Errorf("FIPS HSM with fips140=off: %v\n%s", p.err, out)
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}
