package node

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// cutProxy forwards TCP connections on loopback to a node until cut, which
// ends every connection forwarded so far (the node sees its client hang up;
// the client's gRPC connection reconnects through the proxy).
type cutProxy struct {
	ln net.Listener
	to string
	wg sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	p := &cutProxy{ln: listen(t), to: to}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		p.ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.DialTimeout("tcp", p.to, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(u, c); u.Close() })
		p.wg.Go(func() { io.Copy(c, u); c.Close() })
	}
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestClientAfterConnectionEnds (finding 13, the client's side): when its
// connection ends, the node closes its sessions; the Go client then logs
// in again on its new connection, and a multi-part operation of the old
// session is reported lost (CKR_OPERATION_NOT_INITIALIZED).
func TestClientAfterConnectionEnds(t *testing.T) {
	pki := newTestPKI(t, "cluster-reconnect")
	n := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "ready", n.Ready)
	activate(t, hsmv1.NewHSMClient(dial(t, pki, n.Addr())))
	p := newCutProxy(t, n.Addr())
	ctx := t.Context()
	cl, err := client.Dial(ctx, client.Config{
		HSMs: []string{p.ln.Addr().String()},
		TLS: func(string) (*tls.Config, error) {
			return &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}, nil
		},
		ReconnectInterval: 10 * time.Millisecond, ReconnectAttempts: client.ReconnectForever,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	s, err := cl.Login(ctx, "crypto-user", cuName, cuPW)
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.GenerateKey(ctx, client.Mechanism{Type: ck.CKM_AES_KEY_GEN}, []client.Attribute{
		client.Bool(ck.CKA_TOKEN, true), {Type: ck.CKA_VALUE_LEN, Value: []byte{32, 0, 0, 0, 0, 0, 0, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	cbc := client.Mechanism{Type: ck.CKM_AES_CBC_PAD, IV: make([]byte, 16)}
	op, err := s.Begin(ctx, client.FnEncrypt, key, cbc)
	if err != nil {
		t.Fatal(err)
	}
	dev := n.dev.Load()
	if got := dev.SessionCount(); got != 1 {
		t.Fatalf("%d device sessions, want the client's 1", got)
	}

	p.cut()
	eventually(t, "the node closing the ended connection's session", func() bool { return dev.SessionCount() == 0 })
	// The client may first see the cut as a failed call (and wait for the
	// HSM to come back) or reconnect unseen: either way it recovers.
	eventually(t, "an encryption after the cut", func() bool {
		_, err := s.Encrypt(ctx, key, cbc, []byte("after the cut"))
		return err == nil
	})
	if got := dev.SessionCount(); got != 1 {
		t.Errorf("%d device sessions after the client came back, want 1 (logged in again)", got)
	}
	_, err = op.Update(ctx, []byte("more"))
	if !errors.Is(err, client.ErrOperationLost) || client.Code(err) != ck.CKR_OPERATION_NOT_INITIALIZED {
		t.Errorf("a step of an operation begun before the cut: %v, want CKR_OPERATION_NOT_INITIALIZED", err)
	}
}
