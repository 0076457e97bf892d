package node

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestSessionIdleTimeout: a session unused for longer than the idle timeout
// is closed; one in use or used recently is not.
func TestSessionIdleTimeout(t *testing.T) {
	pki := newTestPKI(t, "cluster-idle")
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.Now, cfg.SessionIdleTimeout = clock.Now, time.Minute
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	ctx := t.Context()
	activate(t, c)
	dev := n.dev.Load()
	use := func(s uint64) error {
		_, err := c.GenerateRandom(ctx, &hsmv1.RandomRequest{Session: s, Length: 8})
		return err
	}

	idle, active := cuSession(t, c), cuSession(t, c)
	clock.advance(40 * time.Second)
	if err := use(active); err != nil {
		t.Fatal(err)
	}
	clock.advance(30 * time.Second) // idle: 70 s unused; active: 30 s
	if got := n.sessions.reap(dev); got != 1 {
		t.Errorf("reaped %d sessions, want 1", got)
	}
	wantErr(t, use(idle), codes.NotFound, "CKR_SESSION_HANDLE_INVALID")
	if err := use(active); err != nil {
		t.Errorf("recently used session: %v", err)
	}

	// A session in the middle of a call is never closed under it.
	cs, err := n.sessions.acquire(active)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Hour)
	if got := n.sessions.reap(dev); got != 0 {
		t.Errorf("reaped %d busy sessions", got)
	}
	n.sessions.release(cs)
	if err := use(active); err != nil {
		t.Errorf("session after its long call: %v", err)
	}
	clock.advance(time.Hour)
	if got := n.sessions.reap(dev); got != 1 {
		t.Errorf("reaped %d sessions, want 1", got)
	}
	if got := dev.SessionCount(); got != 0 {
		t.Errorf("device still has %d sessions", got)
	}
}

func TestSessionLimit(t *testing.T) {
	pki := newTestPKI(t, "cluster-limit")
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.MaxSessions = 3
	n := start(t, cfg)
	eventually(t, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	var last uint64
	for range 3 {
		last = open(t, c)
	}
	_, err := c.OpenSession(t.Context(), &hsmv1.OpenSessionRequest{})
	wantErr(t, err, codes.FailedPrecondition, "CKR_SESSION_COUNT")
	must(t)(c.CloseSession(t.Context(), &hsmv1.SessionRequest{Session: last}))
	open(t, c)
	_, err = c.CloseSession(t.Context(), &hsmv1.SessionRequest{Session: last})
	wantErr(t, err, codes.NotFound, "CKR_SESSION_HANDLE_INVALID")
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestMetricsAndHealth(t *testing.T) {
	pki := newTestPKI(t, "cluster-metrics")
	down := listen(t)
	down.Close()
	cfg := config(t, pki, 1, MasterKeyCreate)
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.Peers = []PeerAddr{{ID: 2, Addr: down.Addr().String()}}
	n := start(t, cfg)
	base := "http://" + n.MetricsAddr()
	eventually(t, "ready", n.Ready)
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}

	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	activate(t, c)
	s := cuSession(t, c)
	if _, err := aesKey(t, c, s, true, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := aesKey(t, c, s, false, 0); err != nil {
		t.Fatal(err)
	}
	_, err := c.Sign(t.Context(), &hsmv1.CryptRequest{Session: s, Key: 1})
	wantErr(t, err, codes.InvalidArgument, "CKR_ARGUMENTS_BAD")

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		"\nHsmKeysTokenOccupied 1\n",
		"\nHsmKeysSessionOccupied 1\n",
		"\nHsmSessionCount 1\n",
		"\nHsmUsersAvailable 1022\n",
		"\nHsmUsersMax 1024\n",
		"\nHsmUnhealthy 0\n",
		"\ncoffer_ready 1\n",
		"\ncoffer_sync_lag_seconds{peer=\"2\"} ",
		"\ncoffer_rpc_requests_total{code=\"OK\",method=\"GenerateKey\",service=\"HSM\"} 2\n",
		"\ncoffer_rpc_requests_total{code=\"InvalidArgument\",method=\"Sign\",service=\"HSM\"} 1\n",
		"\ncoffer_rpc_duration_seconds_count{method=\"GenerateKey\",service=\"HSM\"} 2\n",
		"\ngo_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}

func TestReadyzWhileJoining(t *testing.T) {
	pki := newTestPKI(t, "cluster-joining")
	down := listen(t)
	down.Close()
	cfg := config(t, pki, 2, MasterKeyClone)
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.Peers = []PeerAddr{{ID: 1, Addr: down.Addr().String()}}
	n := start(t, cfg)
	code, body := get(t, "http://"+n.MetricsAddr()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "device not loaded") {
		t.Errorf("/readyz = %d %q, want 503 naming the device", code, body)
	}
	if code, _ := get(t, "http://"+n.MetricsAddr()+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while joining", code)
	}
}
