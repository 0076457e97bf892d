package node

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// TestGarbageConnections sends garbage to the port over raw TCP while a
// client signs: the node drops each garbage connection and the client never
// notices.
func TestGarbageConnections(t *testing.T) {
	pki := newTestPKI(t, "cluster-garbage")
	n := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "ready", n.Ready)
	c := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	activate(t, c)
	s := cuSession(t, c)
	pair, err := ecPair(t, c, s, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	sign := func() error {
		_, err := c.Sign(t.Context(), &hsmv1.CryptRequest{Session: s, Key: pair.GetPrivateKey(), Mechanism: mechOf(ck.CKM_ECDSA_SHA256), Data: []byte("m")})
		return err
	}

	var signed atomic.Int64
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := sign(); err != nil {
				done <- err
				return
			}
			signed.Add(1)
		}
	}()
	eventually(t, "the client to sign", func() bool { return signed.Load() > 0 })

	random := make([]byte, 64<<10)
	rand.Read(random)
	random[0] = 0x42 // not a TLS handshake record
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"random bytes", random},
		{"HTTP/1.1", []byte("GET / HTTP/1.1\r\nHost: hsm\r\n\r\n")},
		{"cleartext HTTP/2", append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), random[:1024]...)},
		{"broken ClientHello", []byte{0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0xff, 0xff, 0xff, 1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", n.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write(tc.data) // the node may hang up before it has read everything
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err = io.Copy(io.Discard, conn)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("the node kept the garbage connection open")
			}
		})
	}
	after := signed.Load()
	eventually(t, "the client to sign after the garbage", func() bool { return signed.Load() > after })
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("concurrent client: %v", err)
	}
	if err := sign(); err != nil {
		t.Fatalf("after the garbage: %v", err)
	}
}

// rawCodec sends and receives message bytes as they are, so a test can put
// arbitrary bytes where a request message belongs.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)      { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error { *v.(*[]byte) = data; return nil }
func (rawCodec) Name() string                       { return "proto" }

// TestRandomRequests sends random bytes as the request of every HSM and Peer
// method: each gets an answer, none panics, and the node keeps serving.
func TestRandomRequests(t *testing.T) {
	pki := newTestPKI(t, "cluster-random")
	n := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "ready", n.Ready)
	conn := dial(t, pki, n.Addr(), pki.nodeCert(t, 2)) // authorized for Peer RPCs too
	c := hsmv1.NewHSMClient(conn)
	activate(t, c)
	s := cuSession(t, c)
	rng := mrand.New(mrand.NewPCG(1, 2))
	calls := 0
	for _, sd := range []grpc.ServiceDesc{hsmv1.HSM_ServiceDesc, hsmv1.Peer_ServiceDesc} {
		for _, m := range sd.Methods {
			for i := range 12 {
				req := make([]byte, rng.IntN(200))
				for j := range req {
					req[j] = byte(rng.Uint32())
				}
				if i%2 == 1 { // a valid session in field 1 gets past the session check
					req = append(protoVarint(1, s), req...)
				}
				var resp []byte
				err := conn.Invoke(t.Context(), "/"+sd.ServiceName+"/"+m.MethodName, &req, &resp, grpc.ForceCodec(rawCodec{}))
				if st := status.Convert(err); st.Code() == codes.Internal && st.Message() == "internal error" {
					t.Errorf("%s/%s panicked on %x", sd.ServiceName, m.MethodName, req)
				}
				calls++
			}
		}
	}
	if _, err := c.NodeInfo(t.Context(), &hsmv1.Empty{}); err != nil {
		t.Fatalf("after %d random requests: %v", calls, err)
	}
}

// protoVarint encodes a varint field.
func protoVarint(field int, v uint64) []byte {
	b := []byte{byte(field << 3)}
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// TestPeerAuthorization: Peer RPCs need the client certificate of another
// node of the cluster, naming the node the request claims; HSM RPCs need none.
func TestPeerAuthorization(t *testing.T) {
	pki := newTestPKI(t, "cluster-auth")
	n := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "ready", n.Ready)
	other := newTestPKI(t, "cluster-auth")
	ctx := t.Context()
	hello := func(cert []tls.Certificate, id uint32) (*hsmv1.HelloResponse, error) {
		return hsmv1.NewPeerClient(dial(t, pki, n.Addr(), cert...)).Hello(ctx, &hsmv1.HelloRequest{NodeId: id, ClusterId: "cluster-auth"})
	}
	node2 := []tls.Certificate{pki.nodeCert(t, 2)}
	for _, tc := range []struct {
		name string
		cert []tls.Certificate
		id   uint32
		code codes.Code
	}{
		{"no certificate", nil, 2, codes.PermissionDenied},
		{"not a node certificate", []tls.Certificate{pki.cert(t, "web server", nil)}, 2, codes.PermissionDenied},
		{"another CA", []tls.Certificate{other.nodeCert(t, 2)}, 2, codes.Unavailable},
		{"another node's id", node2, 3, codes.PermissionDenied},
		{"this node's own id", []tls.Certificate{pki.nodeCert(t, 1)}, 1, codes.PermissionDenied},
		{"a node of the cluster", node2, 2, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := hello(tc.cert, tc.id)
			if status.Code(err) != tc.code {
				t.Fatalf("Hello: %v, want %v", err, tc.code)
			}
			if rvName(err) != "" {
				t.Errorf("peer refusal carries ErrorInfo %q", rvName(err))
			}
			if err == nil && (resp.GetNodeId() != 1 || len(resp.GetMkCheck()) == 0 || !resp.GetReady()) {
				t.Errorf("Hello = %v", resp)
			}
		})
	}
	pc := hsmv1.NewPeerClient(dial(t, pki, n.Addr(), node2...))
	if _, err := pc.Push(ctx, &hsmv1.PushRequest{From: 3}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Push claiming another node: %v", err)
	}
	if _, err := pc.Clone(ctx, &hsmv1.CloneRequest{NodeId: 3}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Clone claiming another node: %v", err)
	}
	if _, err := hsmv1.NewPeerClient(dial(t, pki, n.Addr())).Digest(ctx, &hsmv1.DigestRequest{Buckets: 1}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Digest without a certificate: %v", err)
	}
	if _, err := hsmv1.NewHSMClient(dial(t, pki, n.Addr())).OpenSession(ctx, &hsmv1.OpenSessionRequest{}); err != nil {
		t.Errorf("HSM RPC without a certificate: %v", err)
	}
}
