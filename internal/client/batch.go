package client

import (
	"context"
	"errors"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/coffer-hsm/coffer/internal/batch"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// newBatcher returns m's Batch client: its streams live within m's life, so
// a member marked down gets a new stream when it is back.
func newBatcher(m *member) *batch.Client {
	return batch.NewClient(
		func() context.Context { return m.life.Load().ctx },
		func(ctx context.Context) (hsmv1.HSM_BatchClient, error) { return m.rpc.Batch(ctx) },
	)
}

// batchRequest sends req as method's request on m's Batch stream and
// unmarshals the answer into resp, or returns the error the unary RPC
// would have. unary sends it as its own RPC instead, when batching is off,
// the request is too large for a batch or the HSM does not serve Batch.
func batchRequest[Req, Resp proto.Message](ctx context.Context, m *member, method string, req Req, resp Resp,
	unary func(context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	var zero Resp
	if m.batch == nil || !m.batch.Supported() {
		return unary(ctx, req)
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return zero, err
	}
	if len(body) > batch.MaxCallSize {
		return unary(ctx, req)
	}
	reply, err := m.batch.Call(ctx, method, body)
	if errors.Is(err, batch.ErrUnsupported) {
		return unary(ctx, req)
	}
	if err != nil {
		return zero, err
	}
	if len(reply.GetStatus()) > 0 {
		var st spb.Status
		if err := proto.Unmarshal(reply.GetStatus(), &st); err != nil {
			return zero, status.Errorf(codes.Internal, "HSM %s: a batched reply's status: %v", m.addr, err)
		}
		if codes.Code(st.GetCode()) == codes.OK {
			return zero, status.Errorf(codes.Internal, "HSM %s: a batched reply's status is OK and has no response", m.addr)
		}
		return zero, status.ErrorProto(&st)
	}
	if err := proto.Unmarshal(reply.GetResponse(), resp); err != nil {
		return zero, status.Errorf(codes.Internal, "HSM %s: a batched reply: %v", m.addr, err)
	}
	return resp, nil
}
