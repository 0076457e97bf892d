package node

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/coffer-hsm/coffer/internal/hsm"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// FuzzHSMRequest feeds arbitrary bytes, as the request of any HSM RPC
// (method picks it: an index into the service's methods), to the handlers
// of a node with its HSM interceptors, as one client connection would. The
// request's session is replaced by a fresh session of that connection,
// logged in as the crypto user if login is set, so that the bytes reach the
// device. A handler must not panic (the fuzzer sees a panic: the node's
// recovery interceptor is left out) and must answer a gRPC status.
//
// The seeds (testdata/fuzz/FuzzHSMRequest) are one well-formed request per
// method; `go test` runs them.
func FuzzHSMRequest(f *testing.F) {
	pki := newTestPKI(f, "cluster-fuzz")
	cfg := config(f, pki, 1, MasterKeyCreate)
	// Wrong logins are the point here: no pacing, no lock.
	cfg.Device.MaxLoginFailures = 1000
	cfg.Limits = ClientLimits{LoginRate: 1e9, LoginBurst: 1 << 30, LoginFailureDelay: time.Nanosecond, LoginWait: time.Millisecond}
	n, err := New(f.Context(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Close() })
	dev := n.dev.Load()
	srv := &hsmServer{n: n}
	conn := &connInfo{id: 1, addr: keyOf(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})}
	ctx := context.WithValue(context.Background(), connInfoKey{}, conn)

	// Activate the cluster and make the crypto user, through the handlers.
	call := func(method string, req proto.Message) error {
		for _, md := range hsmv1.HSM_ServiceDesc.Methods {
			if md.MethodName == method {
				_, err := md.Handler(srv, ctx, func(in any) error { proto.Merge(in.(proto.Message), req); return nil }, nil)
				return err
			}
		}
		f.Fatalf("no method %s", method)
		return nil
	}
	h, err := n.sessions.open(dev, conn)
	if err != nil {
		f.Fatal(err)
	}
	for _, step := range []struct {
		method string
		req    proto.Message
	}{
		{"Login", &hsmv1.LoginRequest{Session: h, Role: "admin", Username: "admin", Password: "password"}},
		{"Activate", &hsmv1.ActivateRequest{Session: h, NewPassword: adminPW}},
		{"CreateUser", &hsmv1.CreateUserRequest{Session: h, Username: cuName, Role: "crypto-user", Password: cuPW}},
		{"CloseSession", &hsmv1.SessionRequest{Session: h}},
	} {
		if err := call(step.method, step.req); err != nil {
			f.Fatalf("%s: %v", step.method, err)
		}
	}

	methods := hsmv1.HSM_ServiceDesc.Methods
	chain := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return n.enforceClientTLS(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return n.bindSession(ctx, req, info, handler)
		})
	}
	f.Add(uint8(0), false, []byte{})
	f.Fuzz(func(t *testing.T, method uint8, login bool, data []byte) {
		md := methods[int(method)%len(methods)]
		h, err := n.sessions.open(dev, conn)
		if err != nil {
			t.Fatalf("open a session: %v", err)
		}
		defer n.sessions.closeConn(conn.id) // as when the connection ends: also what OpenSession opened
		if login {
			cs, err := n.sessions.acquire(h)
			if err != nil {
				t.Fatal(err)
			}
			// The crypto user may have changed its own password: then the
			// session stays anonymous.
			if dev.Login(ctx, cs.dev, hsm.RoleCryptoUser, cuName, cuPW) == nil {
				n.sessions.setLoggedIn(cs, true)
			}
			n.sessions.release(cs)
		}
		decoded := false
		dec := func(in any) error {
			m := in.(proto.Message)
			if err := proto.Unmarshal(data, m); err != nil {
				return err
			}
			decoded = true
			if fd := m.ProtoReflect().Descriptor().Fields().ByName("session"); fd != nil && fd.Kind() == protoreflect.Uint64Kind {
				m.ProtoReflect().Set(fd, protoreflect.ValueOfUint64(h))
			}
			return nil
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = md.Handler(srv, rctx, dec, chain)
		t.Logf("%s: %v", md.MethodName, err)
		if !decoded || err == nil {
			return // gRPC itself answers bytes that are no such message
		}
		if _, ok := status.FromError(err); !ok {
			t.Fatalf("%s answered a non-status error: %v", md.MethodName, err)
		}
	})
}
