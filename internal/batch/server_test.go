package batch

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// deadlineHSM answers Sign with nothing and reports the deadline each call
// saw.
type deadlineHSM struct {
	hsmv1.UnimplementedHSMServer
	srv       *Server
	deadlines chan time.Duration // 0: none
}

func (h *deadlineHSM) Sign(ctx context.Context, _ *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	var left time.Duration
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	h.deadlines <- left
	return &hsmv1.BytesResponse{}, nil
}

func (h *deadlineHSM) Batch(st hsmv1.HSM_BatchServer) error { return h.srv.Serve(st) }

// A batched call carries its caller's deadline, and runs on the node under
// it as a unary call runs under its grpc-timeout; a call without one runs
// without.
func TestCallCarriesDeadline(t *testing.T) {
	h := &deadlineHSM{deadlines: make(chan time.Duration, 2)}
	h.srv = NewServer(h, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hsmv1.RegisterHSMServer(gs, h)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rpc := hsmv1.NewHSMClient(conn)
	c := NewClient(t.Context, func(ctx context.Context) (hsmv1.HSM_BatchClient, error) { return rpc.Batch(ctx) })

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := c.Call(ctx, "Sign", nil); err != nil {
		t.Fatal(err)
	}
	if left := <-h.deadlines; left <= 0 || left > time.Minute {
		t.Errorf("the node's call had %v left, want its caller's minute at most", left)
	}
	if _, err := c.Call(context.WithoutCancel(t.Context()), "Sign", nil); err != nil {
		t.Fatal(err)
	}
	if left := <-h.deadlines; left != 0 {
		t.Errorf("a call without a deadline ran with %v left", left)
	}
}
