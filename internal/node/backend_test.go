package node

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// TestCryptoBackendReported: NodeInfo and the metrics say which crypto
// backend the node runs (boringcrypto when this test is built with
// GOEXPERIMENT=boringcrypto, go otherwise).
func TestCryptoBackendReported(t *testing.T) {
	pki := newTestPKI(t, "cluster-backend")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.Version = "v9.9.9-test"
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	cb := cryptobackend.Current()
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	info, err := c.NodeInfo(t.Context(), &hsmv1.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if got := info.GetCryptoBackend(); got != cb.String() || got == "" {
		t.Errorf("NodeInfo crypto_backend %q, want %q", got, cb)
	}
	code, body := get(t, "http://"+n.MetricsAddr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	want := fmt.Sprintf("\ncoffer_build_info{crypto_backend=%q,fips140=\"%t\",fips140_enforced=\"%t\",fips_mode=\"false\",fips_module=%q,version=\"v9.9.9-test\"} 1\n",
		cb.Name, cb.FIPS140, cb.Enforced, cb.Module())
	if !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
	}
}

// TestActivationReported: NodeInfo's activated and coffer_cluster_activated
// say whether the cluster was activated (the control plane reads the
// metric; it reads no file of the node's).
func TestActivationReported(t *testing.T) {
	pki := newTestPKI(t, "cluster-activated")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.MetricsListen = "127.0.0.1:0"
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	check := func(want bool) {
		t.Helper()
		info, err := c.NodeInfo(t.Context(), &hsmv1.Empty{})
		if err != nil || info.GetActivated() != want {
			t.Fatalf("NodeInfo activated %v (%v), want %v", info.GetActivated(), err, want)
		}
		_, body := get(t, "http://"+n.MetricsAddr()+"/metrics")
		if line := fmt.Sprintf("\ncoffer_cluster_activated %d\n", map[bool]int{false: 0, true: 1}[want]); !strings.Contains(body, line) {
			t.Fatalf("/metrics lacks %q", strings.TrimSpace(line))
		}
	}
	check(false)
	activate(t, c)
	check(true)
}
