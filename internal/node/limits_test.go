package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	"github.com/coffer-hsm/coffer/internal/hsm"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// dialFrom is an HSM client whose connection comes from the loopback
// address src (e.g. "127.0.0.2"), so that tests can play several client
// addresses.
func dialFrom(t testing.TB, pki *testPKI, addr, src string, cert ...tls.Certificate) *grpc.ClientConn {
	t.Helper()
	tc := &tls.Config{RootCAs: pki.pool, Certificates: cert, MinVersion: tls.VersionTLS13}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// tlsFrom opens a raw TLS connection to the node from src, as an HTTP/2
// client would.
func tlsFrom(pki *testPKI, addr, src string) (*tls.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pki.pool, NextProtos: []string{"h2"}, ServerName: "127.0.0.1"})
}

func login(ctx context.Context, c hsmv1.HSMClient, s uint64, user, pw string) error {
	_, err := c.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: user, Password: pw})
	return err
}

// TestSessionBoundToConnection (finding 13): a session handle is good only
// on the connection that opened it; closing the connection closes its
// sessions.
func TestSessionBoundToConnection(t *testing.T) {
	pki := newTestPKI(t, "cluster-bind")
	n := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "ready", n.Ready)
	ctx := t.Context()
	ownerConn := dial(t, pki, n.Addr())
	owner := hsmv1.NewHSMClient(ownerConn)
	activate(t, owner)
	s := cuSession(t, owner)
	cert := pki.cert(t, "app", nil)
	withCert := hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.1", cert))
	sc := open(t, withCert)

	for _, tc := range []struct {
		name string
		from hsmv1.HSMClient
		h    uint64
	}{
		{"another connection of the same address", hsmv1.NewHSMClient(dial(t, pki, n.Addr())), s},
		{"another address", hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.2")), s},
		{"another connection with the same certificate", hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.1", cert)), sc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				name string
				call func() error
			}{
				{"GenerateRandom", func() error {
					_, err := tc.from.GenerateRandom(ctx, &hsmv1.RandomRequest{Session: tc.h, Length: 8})
					return err
				}},
				{"FindObjects", func() error {
					_, err := tc.from.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: tc.h})
					return err
				}},
				{"Login", func() error { return login(ctx, tc.from, tc.h, cuName, cuPW) }},
				{"Logout", func() error {
					_, err := tc.from.Logout(ctx, &hsmv1.SessionRequest{Session: tc.h})
					return err
				}},
				{"CloseSession", func() error {
					_, err := tc.from.CloseSession(ctx, &hsmv1.SessionRequest{Session: tc.h})
					return err
				}},
			} {
				err := c.call()
				if status.Code(err) != codes.NotFound || rvName(err) != "CKR_SESSION_HANDLE_INVALID" {
					t.Errorf("%s from %s: %v, want CKR_SESSION_HANDLE_INVALID", c.name, tc.name, err)
				}
			}
		})
	}
	// The owners still have their sessions, logged in as they were.
	if _, err := aesKey(t, owner, s, false, 0); err != nil {
		t.Fatalf("the owner's session after the others' attempts: %v", err)
	}
	must(t)(withCert.GenerateRandom(ctx, &hsmv1.RandomRequest{Session: sc, Length: 8}))

	dev := n.dev.Load()
	before := dev.SessionCount()
	ownerConn.Close()
	eventually(t, "the closed connection's session closed", func() bool { return dev.SessionCount() == before-1 })
	if _, err := n.sessions.acquire(s); err == nil {
		t.Error("the session of a closed connection is still in the table")
	}
}

// TestSessionQuotas (finding 4): connections that never log in cannot fill
// the session table: per-connection, per-address and node-wide quotas of
// sessions not logged in, headroom for connections that have logged in,
// and such sessions closed after AnonymousSessionTimeout.
func TestSessionQuotas(t *testing.T) {
	pki := newTestPKI(t, "cluster-quota")
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.Now, cfg.MaxSessions = clock.Now, 16 // anonymous sessions: at most 12 of them
	cfg.Limits = ClientLimits{
		MaxAnonymousSessionsPerConnection: 3, MaxAnonymousSessionsPerAddress: 5,
		MaxSessionsPerConnection: 8, MaxSessionsPerAddress: 10, AnonymousSessionTimeout: 10 * time.Second,
	}
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	ctx := t.Context()
	activate(t, hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.9")))
	// alice's application, logged in before the flood.
	app := hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.6"))
	s := cuSession(t, app)

	// fill opens sessions without logging in until refused and returns how
	// many it opened.
	fill := func(c hsmv1.HSMClient) (int, error) {
		for k := 0; ; k++ {
			if _, err := c.OpenSession(ctx, &hsmv1.OpenSessionRequest{}); err != nil {
				return k, err
			}
			if k > cfg.MaxSessions {
				return k, nil
			}
		}
	}
	const refused = "CKR_SESSION_COUNT"
	for _, tc := range []struct {
		name string
		src  string
		want int
	}{
		{"a connection stops at its quota", "127.0.0.1", 3},
		{"another connection of the address stops at the address's quota", "127.0.0.1", 2},
		{"a second address", "127.0.0.2", 3},
		{"a third address", "127.0.0.3", 3},
		{"a fourth address reaches the node's quota for sessions not logged in", "127.0.0.4", 1},
		{"a fifth address finds it reached", "127.0.0.5", 0},
	} {
		got, err := fill(hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), tc.src)))
		if got != tc.want || rvName(err) != refused {
			t.Errorf("%s: opened %d (then %v), want %d then %s", tc.name, got, err, tc.want, refused)
		}
	}

	// A connection that has logged in opens sessions in the headroom.
	for i := range 3 {
		if _, err := app.OpenSession(ctx, &hsmv1.OpenSessionRequest{}); err != nil {
			t.Fatalf("session %d of a logged-in connection during the flood: %v", i+1, err)
		}
	}

	// Sessions not logged in end after the timeout, used or not; logged-in
	// ones stay.
	dev := n.dev.Load()
	clock.advance(9 * time.Second)
	if k := n.sessions.reap(dev); k != 0 {
		t.Errorf("reaped %d sessions before the timeout", k)
	}
	clock.advance(2 * time.Second)
	if k := n.sessions.reap(dev); k != 15 { // 12 + the application's 3
		t.Errorf("reaped %d sessions not logged in, want 15", k)
	}
	if _, err := aesKey(t, app, s, false, 0); err != nil {
		t.Errorf("the logged-in session after the timeout: %v", err)
	}
	if got, err := fill(hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.5"))); got != 3 || rvName(err) != refused {
		t.Errorf("after the timeout: opened %d (then %v), want 3", got, err)
	}

	// Logged-in sessions count against the per-connection quota too.
	for i := 1; ; i++ {
		h, err := app.OpenSession(ctx, &hsmv1.OpenSessionRequest{})
		if err != nil {
			if i != 8 || rvName(err) != refused || !strings.Contains(err.Error(), "connection has 8 open sessions") {
				t.Errorf("new session %d of a connection holding 1, quota 8: %v", i, err)
			}
			break
		}
		if err := login(ctx, app, h.GetSession(), cuName, cuPW); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConnectionLimits (finding 3): one address has a bounded number of
// connections, and every connection a bounded number of concurrent
// streams.
func TestConnectionLimits(t *testing.T) {
	pki := newTestPKI(t, "cluster-conns")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.Limits = ClientLimits{MaxConnectionsPerAddress: 2, MaxStreamsPerConnection: 7}
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)

	var conns []*tls.Conn
	for range 2 {
		c, err := tlsFrom(pki, n.Addr(), "127.0.0.1")
		if err != nil {
			t.Fatalf("a connection within the limit: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	if c, err := tlsFrom(pki, n.Addr(), "127.0.0.1"); err == nil {
		c.Close()
		t.Error("a third connection from one address completed its handshake")
	}
	other, err := tlsFrom(pki, n.Addr(), "127.0.0.2")
	if err != nil {
		t.Fatalf("a connection from another address: %v", err)
	}
	defer other.Close()

	// The node's HTTP/2 settings bound concurrent streams.
	if _, err := other.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(other, other)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	other.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame is %T, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 7 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent %v), want 7", v, ok)
	}

	// A closed connection frees its slot.
	conns[0].Close()
	eventually(t, "a connection after one closed", func() bool {
		c, err := tlsFrom(pki, n.Addr(), "127.0.0.1")
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// retryDelay is the RetryInfo of a refusal (0 if none).
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// wantThrottled checks a refusal of the login limiter: RESOURCE_EXHAUSTED,
// CKR_FUNCTION_FAILED (0x6) in the ErrorInfo a client reads, and a
// RetryInfo.
func wantThrottled(t testing.TB, err error, what string) {
	t.Helper()
	st := status.Convert(err)
	var rv string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			rv = info.GetMetadata()["rv"]
		}
	}
	if st.Code() != codes.ResourceExhausted || rvName(err) != "CKR_FUNCTION_FAILED" || rv != "0x6" || retryDelay(err) <= 0 {
		t.Fatalf("%s: %v (reason %q, rv %q, retry %v), want RESOURCE_EXHAUSTED / CKR_FUNCTION_FAILED with a retry delay",
			what, err, rvName(err), rv, retryDelay(err))
	}
}

// TestLoginRateLimit (finding 3): logins are a token bucket per client
// address; an address over it is refused clearly, others are not slowed.
func TestLoginRateLimit(t *testing.T) {
	pki := newTestPKI(t, "cluster-rate")
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.Now = clock.Now
	cfg.Limits = ClientLimits{LoginRate: 1, LoginBurst: 4, LoginWait: time.Millisecond}
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	ctx := t.Context()
	admin := hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.9"))
	activate(t, admin) // one login of 127.0.0.9

	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	for i := range 4 {
		if err := login(ctx, c, open(t, c), cuName, cuPW); err != nil {
			t.Fatalf("login %d within the burst: %v", i+1, err)
		}
	}
	wantThrottled(t, login(ctx, c, open(t, c), cuName, cuPW), "a login beyond the burst")
	wantThrottled(t, login(ctx, c, open(t, c), "nobody", "x"), "an unknown user beyond the burst")
	// The Go client (and so the PKCS#11 module) reads CKR_FUNCTION_FAILED,
	// a refusal: the HSM is not marked down.
	cl, err := client.Dial(ctx, client.Config{
		HSMs: []string{n.Addr()},
		TLS: func(string) (*tls.Config, error) {
			return &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, err = cl.Login(ctx, "crypto-user", cuName, cuPW)
	if client.Code(err) != ck.CKR_FUNCTION_FAILED || !strings.Contains(err.Error(), "too many logins from 127.0.0.1") {
		t.Fatalf("client login beyond the burst: %v (%v), want CKR_FUNCTION_FAILED saying why", err, client.Code(err))
	}
	if st := cl.ClusterInfo(ctx); len(st) != 1 || !st[0].Up {
		t.Fatalf("the HSM after a refused login: %+v, want up", st)
	}

	other := hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.2"))
	if err := login(ctx, other, open(t, other), cuName, cuPW); err != nil {
		t.Fatalf("another address: %v", err)
	}
	clock.advance(time.Second)
	if err := login(ctx, c, open(t, c), cuName, cuPW); err != nil {
		t.Fatalf("after a token came back: %v", err)
	}
	wantThrottled(t, login(ctx, c, open(t, c), cuName, cuPW), "the next one")
}

// TestLoginQueues: logins over the rate wait for their turn (within
// LoginWait) rather than fail.
func TestLoginQueues(t *testing.T) {
	pki := newTestPKI(t, "cluster-queue")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.Limits = ClientLimits{LoginRate: 100, LoginBurst: 1, LoginWait: 10 * time.Second}
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	activate(t, c)
	ctx := t.Context()
	sessions := make([]uint64, 8)
	for i := range sessions {
		sessions[i] = open(t, c)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(sessions))
	for i, s := range sessions {
		wg.Go(func() { errs[i] = login(ctx, c, s, cuName, cuPW) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent logins from one address: %v", err)
	}
}

// TestLoginFailurePause (finding 6): repeated failed logins from one
// address are paused, growing, before the device's lock: a hostile address
// cannot lock a user in seconds, and the user, elsewhere, still logs in.
func TestLoginFailurePause(t *testing.T) {
	pki := newTestPKI(t, "cluster-pause")
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.Now = clock.Now // the device's lock is at 5 failures
	cfg.Limits = ClientLimits{LoginFailureDelay: 2 * time.Second, LoginWait: time.Millisecond, LoginBurst: 1000}
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	ctx := t.Context()
	admin := hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.9"))
	activate(t, admin)

	hostile := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	guess := func() error { return login(ctx, hostile, open(t, hostile), cuName, "guess") }
	wantErr(t, guess(), codes.Unauthenticated, "CKR_PIN_INCORRECT")
	for range 10 {
		wantThrottled(t, guess(), "a guess during the pause")
	}
	wantThrottled(t, login(ctx, hostile, open(t, hostile), "admin", "guess"), "a guess at another user")

	user := hsmv1.NewHSMClient(dialFrom(t, pki, n.Addr(), "127.0.0.2"))
	if err := login(ctx, user, open(t, user), cuName, cuPW); err != nil {
		t.Fatalf("the user from another address: %v", err)
	}

	// The pause grows four times at each further failure.
	for i, pause := range []time.Duration{2 * time.Second, 8 * time.Second, 32 * time.Second} {
		clock.advance(pause - 100*time.Millisecond) // 100 ms left: more than LoginWait
		wantThrottled(t, guess(), fmt.Sprintf("just before the end of pause %d", i+1))
		clock.advance(100 * time.Millisecond)
		wantErr(t, guess(), codes.Unauthenticated, "CKR_PIN_INCORRECT")
	}
	// A success from the address ends its pause.
	clock.advance(128 * time.Second)
	if err := login(ctx, hostile, open(t, hostile), cuName, cuPW); err != nil {
		t.Fatalf("the right password after the pause: %v", err)
	}
	wantErr(t, guess(), codes.Unauthenticated, "CKR_PIN_INCORRECT")
	err := guess()
	wantThrottled(t, err, "after a success and one failure")
	if d := retryDelay(err); d != 2*time.Second {
		t.Errorf("pause after a success and one failure: %v, want 2s", d)
	}
	if err := login(ctx, user, open(t, user), cuName, cuPW); err != nil {
		t.Fatalf("the user after all the guesses: %v", err)
	}
}

// TestLoginLimiterBounded: the login limiter's table is bounded; states
// holding nothing make room, and when none can, new addresses share one
// state rather than erase the failures counted.
func TestLoginLimiterBounded(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	lim := ClientLimits{LoginAddresses: 2, LoginWait: time.Millisecond}.withDefaults()
	l := newLoginLimiter(lim, clock.Now)
	addr := func(i int) addrKey { return keyOf(&net.TCPAddr{IP: net.IPv4(10, 0, 0, byte(i))}) }
	fail := func() error { return &hsm.Error{Op: "login", Err: hsm.ErrPinIncorrect} }
	ok := func() error { return nil }
	ctx := t.Context()

	for i := range 2 {
		if err := l.login(ctx, addr(i), fail); hsm.Code(err) != ck.CKR_PIN_INCORRECT {
			t.Fatal(err)
		}
	}
	clock.advance(time.Second)
	// The table is full of failures: new addresses share the overflow state.
	if err := l.login(ctx, addr(2), fail); hsm.Code(err) != ck.CKR_PIN_INCORRECT {
		t.Fatal(err)
	}
	wantThrottled(t, l.login(ctx, addr(3), ok), "a new address sharing the paused overflow state")
	if got := l.tracked(); got != 2 {
		t.Errorf("tracking %d addresses, limit 2", got)
	}
	wantThrottled(t, l.login(ctx, addr(0), ok), "a tracked address in its pause")

	// Once they hold nothing (the pause over and forgotten, the bucket full),
	// their room is reused.
	clock.advance(2*lim.LoginMaxFailureDelay + time.Second)
	for i := 4; i < 6; i++ {
		if err := l.login(ctx, addr(i), ok); err != nil {
			t.Fatalf("address %d: %v", i, err)
		}
	}
	if got := l.tracked(); got != 2 {
		t.Errorf("tracking %d addresses, limit 2", got)
	}
	// IPv6 addresses count per /64.
	a := keyOf(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1")})
	b := keyOf(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::2")})
	if a != b || a.String() != "2001:db8:1:2::/64" {
		t.Errorf("IPv6 keys %s and %s, want one /64", a, b)
	}
}

// TestStrangersWriteNoAudit: a call in a session that is not logged in is
// refused before it does anything; it must not cost the node an audit
// record either (a durable one is an fsync), or a stranger with no account
// and no pace grows audit.log and its disk at the rate it can send. Failed
// logins stay audited: they are paced per address (logins.go).
func TestStrangersWriteNoAudit(t *testing.T) {
	pki := newTestPKI(t, "cluster-strangers-audit")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.Limits.LoginFailureDelay = time.Nanosecond // the failed login below, once per case
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	ctx := t.Context()
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	activate(t, c)
	anon := open(t, c)
	aes := []*hsmv1.Attribute{ulongAttr(ck.CKA_VALUE_LEN, 32), boolAttr(ck.CKA_TOKEN, true)}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"create user", func() error {
			_, err := c.CreateUser(ctx, &hsmv1.CreateUserRequest{Session: anon, Username: "mallory", Password: "password1", Role: "crypto-user"})
			return err
		}},
		{"delete user", func() error {
			_, err := c.DeleteUser(ctx, &hsmv1.DeleteUserRequest{Session: anon, Username: cuName})
			return err
		}},
		{"change password", func() error {
			_, err := c.ChangePassword(ctx, &hsmv1.ChangePasswordRequest{Session: anon, Username: cuName, NewPassword: "password2"})
			return err
		}},
		{"activate", func() error {
			_, err := c.Activate(ctx, &hsmv1.ActivateRequest{Session: anon, NewPassword: "password3"})
			return err
		}},
		{"set quorum", func() error {
			_, err := c.SetQuorumValue(ctx, &hsmv1.SetQuorumValueRequest{Session: anon, Service: "user-management", Value: 2})
			return err
		}},
		{"set mTLS enforcement", func() error {
			_, err := c.SetMTLSEnforcement(ctx, &hsmv1.SetMTLSEnforcementRequest{Session: anon, Level: "cluster"})
			return err
		}},
		{"generate key", func() error {
			_, err := c.GenerateKey(ctx, &hsmv1.GenerateKeyRequest{Session: anon, Mechanism: mechOf(ck.CKM_AES_KEY_GEN), Template: aes})
			return err
		}},
		{"encrypt", func() error {
			_, err := c.Encrypt(ctx, &hsmv1.CryptRequest{Session: anon, Key: 1, Mechanism: mechOf(ck.CKM_AES_ECB), Data: make([]byte, 16)})
			return err
		}},
		{"destroy", func() error {
			_, err := c.DestroyObject(ctx, &hsmv1.ObjectRequest{Session: anon, Object: 1})
			return err
		}},
		{"share", func() error {
			_, err := c.ShareKey(ctx, &hsmv1.ShareKeyRequest{Session: anon, Object: 1, Username: cuName})
			return err
		}},
		{"logout", func() error {
			_, err := c.Logout(ctx, &hsmv1.SessionRequest{Session: anon})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := n.audit.Head()
			const calls = 5
			for range calls {
				if err := tc.call(); err == nil {
					t.Fatal("a session not logged in was served")
				}
			}
			// A failed login: one durable record, after every earlier one.
			s := open(t, c)
			if _, err := c.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: "nobody", Password: "wrong password"}); err == nil {
				t.Fatal("login of an unknown user succeeded")
			}
			if after, _ := n.audit.Head(); after-before != 1 {
				t.Errorf("%d refused calls and a failed login wrote %d audit records, want 1 (the login)", calls, after-before)
			}
		})
	}
}

// tracked is how many addresses have a state of their own.
func (l *loginLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byAddr)
}
