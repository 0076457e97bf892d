package node

import (
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/batch"
	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// handshakeTimeout drops a connection that has not completed its TLS and
// HTTP/2 handshakes in time (e.g. one that sends garbage, or nothing).
const handshakeTimeout = 10 * time.Second

// newGRPCServer builds the server of both services on TLS 1.3.
func (n *Node) newGRPCServer() *grpc.Server {
	// The one chain of unary interceptors: the Batch stream runs each of
	// its calls through it too.
	unary := chainUnary(n.observe, n.recoverUnary, n.enforceClientTLS, n.bindSession, n.catchUpFirst)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(n.serverTLS())),
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		// Calls beyond it wait on the client for a free stream.
		grpc.MaxConcurrentStreams(n.cfg.Limits.MaxStreamsPerConnection),
		grpc.StatsHandler(&connTagger{n: n}),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.UnaryInterceptor(unary),
		grpc.ChainStreamInterceptor(n.recoverStream),
		grpc.WaitForHandlers(true), // Stop returns only once every handler has
		// Long-lived workers run the calls: a goroutine per call would grow
		// its stack through the handler path every time (a tenth of the
		// node's CPU at 64 concurrent signers). Beyond them grpc spawns.
		grpc.NumStreamWorkers(uint32(4*runtime.GOMAXPROCS(0))),
	)
	hs := &hsmServer{n: n}
	hs.batch = batch.NewServer(hs, unary)
	hsmv1.RegisterHSMServer(srv, hs)
	hsmv1.RegisterPeerServer(srv, &peerServer{n: n})
	hsmv1.RegisterOperatorServer(srv, &operatorServer{n: n})
	hsmv1.RegisterReplicationLinkServer(srv, &linkServer{n: n})
	return srv
}

// chainUnary is the interceptors as one, the first outermost.
func chainUnary(ics ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return chainFrom(ics, ctx, req, info, handler)
	}
}

func chainFrom(ics []grpc.UnaryServerInterceptor, ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if len(ics) == 0 {
		return handler(ctx, req)
	}
	return ics[0](ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return chainFrom(ics[1:], ctx, req, info, handler)
	})
}

// recoverUnary turns a handler's panic into an Internal status, so no input
// can take the node down.
func (n *Node) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			n.log.Error("panic in RPC handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, errPanic()
		}
	}()
	return handler(ctx, req)
}

func (n *Node) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			n.log.Error("panic in stream handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = errPanic()
		}
	}()
	return handler(srv, ss)
}

// sessionRequest is every HSM request naming a session.
type sessionRequest interface{ GetSession() uint64 }

// bindSession refuses an HSM RPC naming a session (nonzero: 0 is "no
// session") that the RPC's connection did not open, as an unknown handle:
// a handle is good only on its connection, with its client certificate.
func (n *Node) bindSession(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if r, ok := req.(sessionRequest); ok && strings.HasPrefix(info.FullMethod, hsmMethodPrefix) && r.GetSession() != 0 {
		c, ok := connOf(ctx)
		if !ok || !n.sessions.owns(r.GetSession(), c) {
			return nil, refusal(ck.CKR_SESSION_HANDLE_INVALID, "no such session")
		}
	}
	return handler(ctx, req)
}

// observe counts every RPC and its latency by service, method and code.
func (n *Node) observe(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	service, method := splitMethod(info.FullMethod)
	n.metrics.observe(service, method, status.Code(err).String(), time.Since(start))
	return resp, err
}

// splitMethod turns "/coffer.hsm.v1.HSM/Sign" into ("HSM", "Sign").
func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	service, method, _ = strings.Cut(full, "/")
	if i := strings.LastIndexByte(service, '.'); i >= 0 {
		service = service[i+1:]
	}
	return service, method
}
