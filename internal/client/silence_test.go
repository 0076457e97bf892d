package client

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// An HSM that answers nothing, not even a liveness probe, is taken out of
// routing after SilenceTimeout, long before RequestTimeout: the creation in
// flight there is resent to another HSM with the same idempotency token
// and the next attempt number.
func TestSilentHSMIsLeft(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	cfg := testConfig(w, pki)
	cfg.SilenceTimeout = 100 * time.Millisecond
	cfg.RequestTimeout = time.Hour // the call returns only if silence is detected
	c := dial(t, cfg)
	s := login(t, c)
	undo := steer(c, 0)
	w.servers[0].setHang("*", true)
	_, err := s.GenerateKey(t.Context(), aesGen, tokenOn)
	undo()
	if err != nil {
		t.Fatalf("GenerateKey with one HSM silent: %v", err)
	}
	if c.live()[0].up.Load() {
		t.Fatal("the silent HSM is still marked up")
	}
	first, second := w.servers[0].lastIdem(t), w.servers[1].lastIdem(t)
	if !bytes.Equal(first.GetToken(), second.GetToken()) || len(first.GetToken()) < 16 ||
		first.GetAttempt() != 1 || second.GetAttempt() != 2 {
		t.Fatalf("sends carried %v then %v; want one token of 16+ bytes, attempts 1 then 2", first, second)
	}
}

// An HSM that is slow with one request but answers the liveness probes is
// not taken for silent: the request waits (up to RequestTimeout).
func TestBusyHSMIsNotSilent(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	cfg := testConfig(w, pki)
	cfg.SilenceTimeout = 50 * time.Millisecond
	c := dial(t, cfg)
	s := login(t, c)
	key := replicatedKey(t, s, 2)
	undo := steer(c, 0)
	defer undo()
	w.servers[0].setHang("Sign", true)
	probes := w.servers[0].count("Mechanisms")
	errc := make(chan error, 1)
	go func() { _, err := s.Sign(t.Context(), key, hmac, []byte("m")); errc <- err }()
	waitEntered(t, w.servers[0])
	// Each probe comes after half a SilenceTimeout of quiet; had the HSM
	// been taken for silent, no probe would follow the first few.
	eventually(t, "five liveness probes answered", func() bool { return w.servers[0].count("Mechanisms") >= probes+5 })
	if !c.live()[0].up.Load() {
		t.Fatal("an HSM that answers its probes was marked down")
	}
	w.servers[0].setHang("Sign", false)
	w.servers[0].stop() // ends the hung request: it is resent to the other HSM
	if err := <-errc; err != nil {
		t.Fatalf("Sign: %v", err)
	}
}

// A login does not wait for a silent HSM either: the session is logged in
// there later, when the HSM is back.
func TestLoginLeavesSilentHSM(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	cfg := testConfig(w, pki)
	cfg.SilenceTimeout = 100 * time.Millisecond
	cfg.RequestTimeout = time.Hour // the login returns only if silence is detected
	c := dial(t, cfg)
	undo := steer(c, 0)
	w.servers[1].setHang("*", true)
	s := login(t, c)
	undo()
	if c.live()[1].up.Load() {
		t.Fatal("the silent HSM is still marked up")
	}
	if s.Username() != fakeUser {
		t.Fatalf("logged in as %q", s.Username())
	}
}

// When every HSM went silent after a creation reached it, the creation's
// outcome is unknown (a send may have made the key), not "no HSM". The
// first silent HSM is left for the other; the last one up is not left for
// silence (nothing else could serve) but bounded by RequestTimeout.
func TestResentCreationOutcomeUnknown(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	cfg := testConfig(w, pki)
	cfg.SilenceTimeout = 100 * time.Millisecond
	cfg.RequestTimeout = 300 * time.Millisecond
	cfg.ReconnectAttempts = 0 // a silent HSM stays down
	c := dial(t, cfg)
	s := login(t, c)
	for _, f := range w.servers {
		f.setHang("*", true)
	}
	_, err := s.GenerateKey(t.Context(), aesGen, tokenOn)
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("GenerateKey with every HSM silent = %v, want an unknown outcome", err)
	}
	if n := w.servers[0].count("GenerateKey") + w.servers[1].count("GenerateKey"); n != 2 {
		t.Fatalf("%d sends, want one to each HSM", n)
	}
}

// The last HSM up is not left for silence: nothing else could serve, so its
// requests are left to RequestTimeout (or the caller).
func TestLastHSMIsNotLeftForSilence(t *testing.T) {
	w, pki := newFakeCluster(t, 1)
	cfg := testConfig(w, pki)
	cfg.SilenceTimeout = 50 * time.Millisecond
	cfg.RequestTimeout = time.Hour
	c := dial(t, cfg)
	s := login(t, c)
	key := replicatedKey(t, s, 1)
	w.servers[0].setHang("*", true)
	probes := w.servers[0].count("Mechanisms")
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := s.Sign(ctx, key, hmac, []byte("m")); errc <- err }()
	m := c.live()[0]
	eventually(t, "an unanswered liveness probe", func() bool {
		return w.servers[0].count("Mechanisms") > probes && !m.probing.Load()
	})
	// By now the HSM has been silent for more than SilenceTimeout.
	r := c.watchRounds.Load()
	eventually(t, "three more watch rounds", func() bool { return c.watchRounds.Load() >= r+3 })
	if !m.up.Load() {
		t.Fatal("the only HSM was marked down for silence")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sign = %v, want the caller's cancellation", err)
	}
	w.servers[0].setHang("*", false) // the session is closed at the end
}
