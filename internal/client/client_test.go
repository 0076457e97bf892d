package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
)

func TestConfigValidate(t *testing.T) {
	pki := newTestPKI(t)
	good := func() Config {
		return Config{HSMs: []string{"127.0.0.1:1", "127.0.0.1:2"}, TLS: pki.tlsFor, ReconnectAttempts: -1}
	}
	for _, tc := range []struct {
		name   string
		mod    func(*Config)
		errSub string
	}{
		{"ok", func(*Config) {}, ""},
		{"no HSMs", func(c *Config) { c.HSMs = nil }, "no HSM"},
		{"bad address", func(c *Config) { c.HSMs = []string{"nope"} }, "address"},
		{"duplicate", func(c *Config) { c.HSMs = []string{"127.0.0.1:1", "127.0.0.1:1"} }, "twice"},
		{"no TLS", func(c *Config) { c.TLS = nil }, "TLS"},
		{"min nodes above HSMs", func(c *Config) { c.CreateObjectMinimumNodes = 3 }, "minimum_nodes"},
		{"min nodes negative", func(c *Config) { c.CreateObjectMinimumNodes = -1 }, "minimum_nodes"},
		{"attempts", func(c *Config) { c.ReconnectAttempts = -2 }, "reconnect attempts"},
		{"negative duration", func(c *Config) { c.RequestTimeout = -1 }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.mod(&cfg)
			err := cfg.Validate()
			switch {
			case tc.errSub == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.errSub != "" && (err == nil || !strings.Contains(err.Error(), tc.errSub)):
				t.Fatalf("Validate = %v, want an error about %q", err, tc.errSub)
			}
		})
	}
}

func TestCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want ck.RV
	}{
		{"nil", nil, ck.CKR_OK},
		{"refusal", fmt.Errorf("sign: %w", &Error{RV: ck.CKR_KEY_HANDLE_INVALID}), ck.CKR_KEY_HANDLE_INVALID},
		{"unknown outcome", &UnknownOutcomeError{Op: "x", HSM: "h", Err: errors.New("eof")}, ck.CKR_DEVICE_ERROR},
		{"no HSM", fmt.Errorf("x: %w", ErrNoHSM), ck.CKR_DEVICE_ERROR},
		{"operation lost", ErrOperationLost, ck.CKR_OPERATION_NOT_INITIALIZED},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), ck.CKR_FUNCTION_CANCELED},
		{"other", errors.New("boom"), ck.CKR_GENERAL_ERROR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Code(tc.err); got != tc.want {
				t.Fatalf("Code = %v, want %v", got, tc.want)
			}
		})
	}
}

// A refusal maps to *Error with its RV, is not retried and does not take the
// HSM down; a status without ErrorInfo is a transport failure.
func TestErrorInfoMapping(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	key := replicatedKey(t, s, 2)
	defer steer(c, 0)()

	for _, rv := range []ck.RV{ck.CKR_KEY_FUNCTION_NOT_PERMITTED, ck.CKR_DEVICE_ERROR, ck.CKR_PIN_LOCKED, ck.CKR_MECHANISM_INVALID} {
		t.Run(rv.String(), func(t *testing.T) {
			w.servers[0].setFail("Sign", refuse(rv, "no way"))
			before0, before1 := w.servers[0].count("Sign"), w.servers[1].count("Sign")
			_, err := s.Sign(t.Context(), key, hmac, []byte("x"))
			var e *Error
			if !errors.As(err, &e) || e.RV != rv || e.Msg != "no way" || e.HSM != w.servers[0].addr {
				t.Fatalf("Sign error = %#v, want *Error{%v, no way, HSM 0}", err, rv)
			}
			if Code(err) != rv || !errors.Is(err, &Error{RV: rv}) || errors.Is(err, &Error{RV: ck.CKR_OK}) {
				t.Fatalf("Code(%v) = %v; errors.Is by RV broken", err, Code(err))
			}
			if got := w.servers[0].count("Sign") - before0; got != 1 {
				t.Fatalf("HSM 0 saw %d Sign requests, want 1 (no retry)", got)
			}
			if got := w.servers[1].count("Sign") - before1; got != 0 {
				t.Fatalf("HSM 1 saw %d Sign requests, want 0 (refusals are not retried)", got)
			}
			if !c.live()[0].up.Load() {
				t.Fatal("a refusal marked the HSM down")
			}
		})
	}
	t.Run("unimplemented", func(t *testing.T) {
		w.servers[0].setFail("Sign", status.Error(codes.Unimplemented, "old node"))
		_, err := s.Sign(t.Context(), key, hmac, []byte("x"))
		if Code(err) != ck.CKR_FUNCTION_NOT_SUPPORTED || !c.live()[0].up.Load() {
			t.Fatalf("Sign = %v (up %v), want CKR_FUNCTION_NOT_SUPPORTED with the HSM still up", err, c.live()[0].up.Load())
		}
	})
	t.Run("no ErrorInfo", func(t *testing.T) {
		w.servers[0].setFail("Sign", status.Error(codes.Internal, "bare internal error"))
		out, err := s.Sign(t.Context(), key, hmac, []byte("x"))
		if err != nil || string(out) != "Sign:x" {
			t.Fatalf("Sign = %q, %v; want it answered by the other HSM", out, err)
		}
		if w.servers[1].count("Sign") != 1 {
			t.Fatal("the request was not retried on the other HSM")
		}
		if c.live()[0].epoch.Load() == 0 {
			t.Fatal("a status without ErrorInfo did not mark the HSM down")
		}
	})
}

// Login happens once per HSM per session, and a wrong password is tried on
// one HSM only.
func TestLoginOncePerHSM(t *testing.T) {
	w, pki := newFakeCluster(t, 3)
	c := dial(t, testConfig(w, pki))

	_, err := c.Login(t.Context(), "crypto-user", fakeUser, "wrong")
	if Code(err) != ck.CKR_PIN_INCORRECT {
		t.Fatalf("Login with a wrong password = %v, want CKR_PIN_INCORRECT", err)
	}
	var tries int64
	for _, f := range w.servers {
		tries += f.logins.Load()
	}
	if tries != 1 {
		t.Fatalf("a wrong password was tried %d times, want 1", tries)
	}

	opened, closed := map[int]int{}, map[int]int{}
	for _, f := range w.servers {
		opened[f.idx], closed[f.idx] = f.count("OpenSession"), f.count("CloseSession")
	}
	s := login(t, c)
	key := replicatedKey(t, s, 3)
	for range 60 {
		if _, err := s.Sign(t.Context(), key, hmac, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range w.servers {
		if got := f.count("OpenSession") - opened[f.idx]; got != 1 {
			t.Errorf("HSM %d: %d sessions opened, want 1", f.nodeID, got)
		}
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Session.Close: %v", err)
	}
	for _, f := range w.servers {
		if got := f.count("CloseSession") - closed[f.idx]; got != 1 {
			t.Errorf("HSM %d: %d CloseSession, want 1", f.nodeID, got)
		}
	}
	if _, err := s.Sign(t.Context(), key, hmac, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sign after Close = %v, want ErrClosed", err)
	}
}

// Least outstanding requests: with every request hanging, nine requests
// sent one after another spread three per HSM.
func TestBalancingByOutstanding(t *testing.T) {
	w, pki := newFakeCluster(t, 3)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	key := replicatedKey(t, s, 3)
	for _, f := range w.servers {
		f.setHang("Sign", true)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	errs := make(chan error, 9)
	inflight := func() (n int64) {
		for _, f := range w.servers {
			n += f.inflight.Load()
		}
		return n
	}
	for i := range 9 {
		wg.Go(func() {
			_, err := s.Sign(ctx, key, hmac, []byte("x"))
			errs <- err
		})
		eventually(t, "request to arrive", func() bool { return inflight() == int64(i+1) })
	}
	for _, f := range w.servers {
		if n := f.inflight.Load(); n != 3 {
			t.Errorf("HSM %d has %d requests in flight, want 3", f.nodeID, n)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Sign = %v, want context.Canceled", err)
		}
	}
	for _, m := range c.live() {
		if !m.up.Load() {
			t.Errorf("HSM %s marked down by the caller's cancellation", m.addr)
		}
	}

	// Without contention, ties are broken at random: every HSM gets a share.
	for _, f := range w.servers {
		f.setHang("Sign", false)
	}
	before := make([]int, 3)
	for i, f := range w.servers {
		before[i] = f.count("Sign")
	}
	for range 300 {
		if _, err := s.Sign(t.Context(), key, hmac, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range w.servers {
		if got := f.count("Sign") - before[i]; got < 60 {
			t.Errorf("HSM %d served %d of 300 requests", f.nodeID, got)
		}
	}
}

func TestClusterInfoAndMechanisms(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	c := dial(t, testConfig(w, pki))
	w.servers[1].stop()
	infos := c.ClusterInfo(t.Context())
	if len(infos) != 2 || infos[0].Err != nil || infos[0].Info.NodeID != 1 || infos[1].Err == nil || infos[1].Info != nil {
		t.Fatalf("ClusterInfo = %+v", infos)
	}
	mechs, err := c.Mechanisms(t.Context())
	if err != nil || len(mechs) != 1 || mechs[0].Type != ck.CKM_AES_KEY_GEN || mechs[0].MaxKeySize != 32 {
		t.Fatalf("Mechanisms = %+v, %v", mechs, err)
	}
}

// A quorum token lives on the HSM that issued it: requests carrying its
// approvals go there.
func TestQuorumTokenRouting(t *testing.T) {
	w, pki := newFakeCluster(t, 3)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	undo := steer(c, 2)
	tok, err := s.QuorumToken(t.Context(), "user-management")
	undo()
	if err != nil || tok.ID != "token-of-3" {
		t.Fatalf("QuorumToken = %+v, %v", tok, err)
	}
	defer steer(c, 0)()
	if err := s.CreateUser(t.Context(), "bob", "crypto-user", "pw", &Approvals{Token: tok.ID}); err != nil {
		t.Fatal(err)
	}
	if w.servers[2].count("CreateUser") != 1 || w.servers[0].count("CreateUser") != 0 {
		t.Fatal("CreateUser with approvals did not go to the token's HSM")
	}

	// A token another client got is found by listing.
	s2 := login(t, c)
	if err := s2.CreateUser(t.Context(), "carol", "crypto-user", "pw", &Approvals{Token: "token-of-2"}); err != nil {
		t.Fatal(err)
	}
	if w.servers[1].count("CreateUser") != 1 {
		t.Fatal("CreateUser with another client's token did not go to its HSM")
	}
	toks, err := s.ListQuorumTokens(t.Context())
	if err != nil || len(toks) != 3 {
		t.Fatalf("ListQuorumTokens = %+v, %v", toks, err)
	}
}
