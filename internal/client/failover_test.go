package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// A server stopped while many idempotent requests run: the callers see no
// failure.
func TestStopUnderLoadIdempotent(t *testing.T) {
	w, pki := newFakeCluster(t, 3)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	key := replicatedKey(t, s, 3)
	ctx := t.Context()
	ops := []func() error{
		func() error { _, err := s.Sign(ctx, key, hmac, []byte("m")); return err },
		func() error { return s.Verify(ctx, key, hmac, []byte("m"), []byte("Sign:m")) },
		func() error { _, err := s.Encrypt(ctx, key, aesGen, []byte("m")); return err },
		func() error { _, err := s.Decrypt(ctx, key, aesGen, []byte("m")); return err },
		func() error { _, err := s.Digest(ctx, Mechanism{Type: ck.CKM_SHA256}, []byte("m")); return err },
		func() error { _, err := s.GetAttributes(ctx, key, []ck.AttributeType{ck.CKA_LABEL}); return err },
		func() error { _, err := s.FindObjects(ctx, nil); return err },
		func() error { _, err := s.GenerateRandom(ctx, 16); return err },
		func() error { _, err := s.ExportPublicKey(ctx, key); return err },
		func() error { _, err := s.WrapKey(ctx, key, aesGen, key); return err },
	}
	var done atomic.Int64
	var failures atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := ops[(g+i)%len(ops)](); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				done.Add(1)
			}
		})
	}
	eventually(t, "load to build up", func() bool { return done.Load() >= 300 })
	w.servers[1].stop()
	mark := done.Load()
	eventually(t, "load to go on", func() bool { return done.Load() >= mark+600 })
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d idempotent requests failed while one HSM of three stopped; first: %v", n, done.Load(), firstErr.Load())
	}
	if c.live()[1].up.Load() {
		t.Fatal("the stopped HSM is still marked up")
	}
}

// stopMidRequest runs op with its request hanging on HSM 0 of three, stops
// HSM 0 while the request is there, and returns op's error and how many
// requests of method the other HSMs received meanwhile.
func stopMidRequest(t *testing.T, method string, op func(ctx context.Context, s *Session, key ObjectID) error) (*world, *Cluster, int, error) {
	t.Helper()
	w, pki := newFakeCluster(t, 3)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	key := replicatedKey(t, s, 3)
	undo := steer(c, 0)
	defer undo()
	w.servers[0].setHang(method, true)
	before := w.servers[1].count(method) + w.servers[2].count(method)
	errc := make(chan error, 1)
	go func() { errc <- op(t.Context(), s, key) }()
	if got := waitEntered(t, w.servers[0]); got != method {
		t.Fatalf("request %s hung, want %s", got, method)
	}
	w.servers[0].stop()
	err := <-errc
	return w, c, w.servers[1].count(method) + w.servers[2].count(method) - before, err
}

func TestStopMidRequest(t *testing.T) {
	for _, tc := range []struct {
		method     string
		idempotent bool
		op         func(ctx context.Context, s *Session, key ObjectID) error
	}{
		{"Sign", true, func(ctx context.Context, s *Session, key ObjectID) error {
			_, err := s.Sign(ctx, key, hmac, []byte("m"))
			return err
		}},
		{"Verify", true, func(ctx context.Context, s *Session, key ObjectID) error {
			return s.Verify(ctx, key, hmac, []byte("m"), []byte("Sign:m"))
		}},
		{"FindObjects", true, func(ctx context.Context, s *Session, key ObjectID) error {
			_, err := s.FindObjects(ctx, nil)
			return err
		}},
		{"Begin", true, func(ctx context.Context, s *Session, key ObjectID) error {
			_, err := s.Begin(ctx, FnSign, key, hmac)
			return err
		}},
		// A creation of token objects carries an idempotency token: it is
		// resent (and the HSMs keep one key, docs/design.md).
		{"GenerateKey", true, func(ctx context.Context, s *Session, key ObjectID) error {
			_, err := s.GenerateKey(ctx, aesGen, tokenOn)
			return err
		}},
		{"DeriveKey", true, func(ctx context.Context, s *Session, key ObjectID) error {
			_, err := s.DeriveKey(ctx, key, Mechanism{Type: ck.CKM_ECDH1_DERIVE}, tokenOn)
			return err
		}},
		// A session object would live in a node session that is gone.
		{"GenerateKey", false, func(ctx context.Context, s *Session, key ObjectID) error {
			_, err := s.GenerateKey(ctx, aesGen, []Attribute{Bool(ck.CKA_TOKEN, false)})
			return err
		}},
		{"DeriveKey", false, func(ctx context.Context, s *Session, key ObjectID) error {
			_, err := s.DeriveKey(ctx, key, Mechanism{Type: ck.CKM_ECDH1_DERIVE}, []Attribute{Bool(ck.CKA_TOKEN, false)})
			return err
		}},
		{"SetAttributes", false, func(ctx context.Context, s *Session, key ObjectID) error {
			return s.SetAttributes(ctx, key, []Attribute{{Type: ck.CKA_LABEL, Value: []byte("l")}})
		}},
		{"DestroyObject", false, func(ctx context.Context, s *Session, key ObjectID) error {
			return s.DestroyObject(ctx, key)
		}},
		{"CreateUser", false, func(ctx context.Context, s *Session, key ObjectID) error {
			return s.CreateUser(ctx, "bob", "crypto-user", "pw", nil)
		}},
		{"Update", false, func(ctx context.Context, s *Session, key ObjectID) error {
			op, err := s.Begin(ctx, FnSign, key, hmac)
			if err != nil {
				return err
			}
			_, err = op.Update(ctx, []byte("m"))
			return err
		}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			w, c, others, err := stopMidRequest(t, tc.method, tc.op)
			if tc.idempotent {
				if err != nil {
					t.Fatalf("%s failed although two HSMs are up: %v", tc.method, err)
				}
				if others != 1 {
					t.Fatalf("%s sent %d times to the other HSMs, want 1", tc.method, others)
				}
				return
			}
			var u *UnknownOutcomeError
			if !errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &u) || u.HSM != w.servers[0].addr {
				t.Fatalf("%s = %v, want an unknown outcome on HSM %s", tc.method, err, w.servers[0].addr)
			}
			if others != 0 {
				t.Fatalf("%s was resent to another HSM %d times", tc.method, others)
			}
			if c.live()[0].up.Load() {
				t.Fatal("the stopped HSM is still marked up")
			}
		})
	}
}

// A multi-part operation whose HSM is known down fails without a request.
func TestOperationLost(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	key := replicatedKey(t, s, 2)
	undo := steer(c, 0)
	op, err := s.Begin(t.Context(), FnSign, key, hmac)
	undo()
	if err != nil || op.HSM() != w.servers[0].addr {
		t.Fatalf("Begin = %v on %s", err, op.HSM())
	}
	if out, err := op.Update(t.Context(), []byte("a")); err != nil || string(out) != "a" {
		t.Fatalf("Update = %q, %v", out, err)
	}
	w.servers[0].stop()
	// Another request finds HSM 0 down.
	undo = steer(c, 0)
	if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
		t.Fatal(err)
	}
	undo()
	if c.live()[0].up.Load() {
		t.Fatal("HSM 0 not marked down")
	}
	_, err = op.Finish(t.Context(), nil)
	if !errors.Is(err, ErrOperationLost) || Code(err) != ck.CKR_OPERATION_NOT_INITIALIZED {
		t.Fatalf("Finish after the HSM failed = %v, want ErrOperationLost", err)
	}
	if w.servers[1].count("Finish") != 0 {
		t.Fatal("Finish went to another HSM")
	}
}

// A stopped HSM that comes back at the same address is used again, with a
// new session and login.
func TestReconnectAndLogInAgain(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	key := replicatedKey(t, s, 2)
	f := w.servers[0]
	logins := f.logins.Load()

	f.stop()
	undo := steer(c, 0)
	if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
		t.Fatalf("Sign while HSM 0 is stopped: %v", err)
	}
	undo()
	if c.live()[0].up.Load() {
		t.Fatal("HSM 0 not marked down")
	}
	f.start(t)
	eventually(t, "HSM 0 back", func() bool { return c.live()[0].up.Load() })

	defer steer(c, 0)()
	before := f.count("Sign")
	if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
		t.Fatalf("Sign after reconnect: %v", err)
	}
	if f.count("Sign") != before+1 {
		t.Fatal("the reconnected HSM was not used")
	}
	if got := f.logins.Load() - logins; got != 1 {
		t.Fatalf("%d logins on the reconnected HSM, want 1", got)
	}
	// Once logged in again, no more logins.
	if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil || f.logins.Load()-logins != 1 {
		t.Fatalf("second Sign: %v, logins %d", err, f.logins.Load()-logins)
	}
}

// A node that forgot the session (restart behind a live connection, idle
// timeout) answers CKR_SESSION_HANDLE_INVALID: the client logs in again and
// resends, even a creation.
func TestSessionRenewedTransparently(t *testing.T) {
	w, pki := newFakeCluster(t, 1)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	key := replicatedKey(t, s, 1)
	w.servers[0].forgetSessions()
	if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	w.servers[0].forgetSessions()
	if _, err := s.GenerateKey(t.Context(), aesGen, tokenOn); err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if n := w.servers[0].logins.Load(); n != 3 {
		t.Fatalf("%d logins, want 3", n)
	}
}

func TestReconnectAttempts(t *testing.T) {
	t.Run("0 never", func(t *testing.T) {
		w, pki := newFakeCluster(t, 2)
		cfg := testConfig(w, pki)
		cfg.ReconnectAttempts = 0
		c := dial(t, cfg)
		s := login(t, c)
		key := replicatedKey(t, s, 2)
		f := w.servers[0]
		f.stop()
		undo := steer(c, 0)
		if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
			t.Fatal(err)
		}
		undo()
		f.start(t)
		r := c.rounds.Load()
		eventually(t, "three reconnect rounds", func() bool { return c.rounds.Load() >= r+3 })
		m := c.live()[0]
		m.mu.Lock()
		gaveUp := m.gaveUp
		m.mu.Unlock()
		if m.up.Load() || !gaveUp || m.probes.Load() != 0 || f.count("NodeInfo") != 1 {
			t.Fatalf("up %v, gave up %v, %d probes, %d NodeInfo; want down, given up, no probe, only the dial's",
				m.up.Load(), gaveUp, m.probes.Load(), f.count("NodeInfo"))
		}
	})
	t.Run("2 then give up", func(t *testing.T) {
		w, pki := newFakeCluster(t, 2)
		cfg := testConfig(w, pki)
		cfg.ReconnectAttempts = 2
		cfg.RequestTimeout = time.Second
		c := dial(t, cfg)
		s := login(t, c)
		key := replicatedKey(t, s, 2)
		w.servers[0].stop()
		defer steer(c, 0)()
		if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
			t.Fatal(err)
		}
		m := c.live()[0]
		eventually(t, "giving up", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.gaveUp
		})
		if n := m.probes.Load(); n != 2 {
			t.Fatalf("%d probes, want 2", n)
		}
	})
}

// blackhole accepts connections and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		lis.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

// A dead HSM never hangs a caller.
func TestDeadHSMNeverHangs(t *testing.T) {
	t.Run("dial a blackhole", func(t *testing.T) {
		pki := newTestPKI(t)
		_, err := Dial(t.Context(), Config{HSMs: []string{blackhole(t)}, TLS: pki.tlsFor, RequestTimeout: 100 * time.Millisecond})
		if !errors.Is(err, ErrNoHSM) {
			t.Fatalf("Dial = %v, want ErrNoHSM", err)
		}
	})
	t.Run("blackhole in the cluster", func(t *testing.T) {
		w, pki := newFakeCluster(t, 1)
		cfg := testConfig(w, pki)
		cfg.HSMs = append(cfg.HSMs, blackhole(t))
		cfg.RequestTimeout = 100 * time.Millisecond
		c := dial(t, cfg)
		if c.live()[1].up.Load() {
			t.Fatal("blackhole marked up")
		}
		s := login(t, c)
		key := replicatedKey(t, s, 1)
		for range 20 {
			if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
				t.Fatal(err)
			}
		}
		// The reconnect loop keeps probing the blackhole; Close must not wait for it.
		eventually(t, "a probe", func() bool { return c.live()[1].probes.Load() > 0 })
	})
	t.Run("hung HSM times out", func(t *testing.T) {
		w, pki := newFakeCluster(t, 2)
		cfg := testConfig(w, pki)
		cfg.RequestTimeout = 200 * time.Millisecond
		c := dial(t, cfg)
		s := login(t, c)
		key := replicatedKey(t, s, 2)
		w.servers[0].setHang("*", true)
		defer steer(c, 0)()
		if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
			t.Fatalf("Sign with one HSM hung: %v", err)
		}
		if c.live()[0].epoch.Load() == 0 {
			t.Fatal("the hung HSM was not marked down")
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		w, pki := newFakeCluster(t, 1)
		c := dial(t, testConfig(w, pki))
		s := login(t, c)
		key := replicatedKey(t, s, 1)
		w.servers[0].setHang("*", true)
		for _, tc := range []struct {
			name string
			op   func(context.Context) error
			want error
		}{
			{"idempotent", func(ctx context.Context) error { _, err := s.Sign(ctx, key, hmac, nil); return err }, context.Canceled},
			{"creation", func(ctx context.Context) error { _, err := s.GenerateKey(ctx, aesGen, tokenOn); return err }, ErrOutcomeUnknown},
		} {
			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() { errc <- tc.op(ctx) }()
			waitEntered(t, w.servers[0])
			cancel()
			if err := <-errc; !errors.Is(err, tc.want) || !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: cancelled call = %v, want %v", tc.name, err, tc.want)
			}
		}
		w.servers[0].setHang("*", false)
		if !c.live()[0].up.Load() {
			t.Fatal("the caller's cancellation marked the HSM down")
		}
	})
	t.Run("caller deadline while logging in", func(t *testing.T) {
		w, pki := newFakeCluster(t, 1)
		c := dial(t, testConfig(w, pki))
		w.servers[0].setHang("Login", true)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if _, err := c.Login(ctx, "crypto-user", fakeUser, fakePassword); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Login = %v, want DeadlineExceeded", err)
		}
	})
}

// An HSM that answers but has not caught up with its peers is not used, and
// waiting for it does not use up reconnect attempts.
func TestNotReadyHSM(t *testing.T) {
	w, pki := newFakeCluster(t, 2)
	w.servers[0].notReady.Store(true)
	cfg := testConfig(w, pki)
	cfg.ReconnectAttempts = 1
	c := dial(t, cfg)
	if c.live()[0].up.Load() {
		t.Fatal("a not-ready HSM is used")
	}
	eventually(t, "three probes", func() bool { return c.live()[0].probes.Load() >= 3 })
	w.servers[0].notReady.Store(false)
	eventually(t, "the HSM to be used once ready", func() bool { return c.live()[0].up.Load() })
}

// TestLoginRefusedByOneHSM: an HSM that cannot log a session in for a reason
// of its own (its disk is full, CKR_DEVICE_MEMORY; a device error) did
// nothing, so the request goes to another HSM; a refusal about the
// credentials is the user's and is never tried elsewhere.
func TestLoginRefusedByOneHSM(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rv     ck.RV
		wantOK bool
	}{
		{"disk full", ck.CKR_DEVICE_MEMORY, true},
		{"device error", ck.CKR_DEVICE_ERROR, true},
		{"wrong password", ck.CKR_PIN_INCORRECT, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, pki := newFakeCluster(t, 2)
			c := dial(t, testConfig(w, pki))
			s := login(t, c)
			key := replicatedKey(t, s, 2) // on both HSMs
			w.servers[0].setFail("Login", refuse(tc.rv, "refused by this HSM"))
			one, two := w.servers[0], w.servers[1]
			// Until a request meets HSM 1's refusal (balancing chooses):
			// each round HSM 1 forgets the session, so a request that goes
			// there logs in again.
			for i := 0; one.count("Login") < 2; i++ {
				if i == 200 {
					t.Fatal("no request went to HSM 1: the test proves nothing")
				}
				one.forgetSessions()
				before := two.count("Login")
				_, err := s.Sign(t.Context(), key, hmac, []byte("m"))
				met := one.count("Login") >= 2
				switch {
				case tc.wantOK && err != nil:
					t.Fatalf("Sign: %v", err)
				case !tc.wantOK && met && err == nil:
					t.Fatalf("a login refused with %v was tried on another HSM (HSM 2 logins %d → %d)", tc.rv, before, two.count("Login"))
				case !tc.wantOK && met && !errors.Is(err, &Error{RV: tc.rv}):
					t.Fatalf("Sign: %v, want %v", err, tc.rv)
				}
			}
		})
	}
}
