package client

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/testwait"
)

var (
	aesGen  = Mechanism{Type: ck.CKM_AES_KEY_GEN}
	hmac    = Mechanism{Type: ck.CKM_SHA256_HMAC}
	tokenOn = []Attribute{Bool(ck.CKA_TOKEN, true)}
)

// testConfig is a Config for the fake cluster w with short intervals.
func testConfig(w *world, pki testPKI) Config {
	return Config{
		HSMs:              w.addrs(),
		TLS:               pki.tlsFor,
		ReconnectInterval: 10 * time.Millisecond,
		ReconnectAttempts: ReconnectForever,
		RequestTimeout:    10 * time.Second, // hangs in these tests end by cancellation or a server stop
		Rand:              rand.New(rand.NewPCG(1, 2)),
	}
}

func dial(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c, err := Dial(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func login(t *testing.T, c *Cluster) *Session {
	t.Helper()
	s, err := c.Login(t.Context(), "crypto-user", fakeUser, fakePassword)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.WithoutCancel(t.Context())) })
	return s
}

// replicatedKey creates a token key every HSM holds.
func replicatedKey(t *testing.T, s *Session, n int) ObjectID {
	t.Helper()
	key, err := s.GenerateKey(t.Context(), aesGen, tokenOn, MinNodes(n))
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return key
}

// eventually waits until cond holds, failing the test after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if testwait.Eventually(t.Context(), 10*time.Second, time.Millisecond, testwait.Holds(cond)) != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// steer makes every HSM but the i-th look busy, so the next request goes to
// the i-th; the returned func undoes it.
func steer(c *Cluster, i int) func() {
	for j, m := range c.live() {
		if j != i {
			m.outstanding.Add(1000)
		}
	}
	return func() {
		for j, m := range c.live() {
			if j != i {
				m.outstanding.Add(-1000)
			}
		}
	}
}

// waitEntered waits until a hung request reached f.
func waitEntered(t *testing.T, f *fakeHSM) string {
	t.Helper()
	select {
	case m := <-f.entered:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no request reached HSM %d", f.nodeID)
		return ""
	}
}
