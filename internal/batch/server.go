// Package batch carries many single-part RPCs of the HSM service on one
// Batch stream, many to a message, in both directions: Serve on the node,
// Stream on the client. A batched call is answered exactly as its unary RPC
// would be: it runs through the server's own chain of unary interceptors
// into the method's handler, with the stream's context, which carries the
// same connection and peer. No rule is written twice.
package batch

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Bounds of one Batch stream. A client keeps its messages within the first
// two; a message beyond them ends the stream.
const (
	MaxCalls    = 256      // calls in one BatchRequest
	MaxCallSize = 64 << 10 // bytes of one call's request
	// maxInFlight bounds the calls of one stream received and not yet
	// answered: beyond it the node reads no more from the stream. A client
	// that does not read its replies holds at most this many (of at most
	// MaxCallSize and a little more each: 4 MiB, a unary message's bound)
	// and stalls only itself.
	maxInFlight = 64
	// maxWorkers bounds the goroutines running one stream's calls. A
	// call may wait (for a catch-up from the peers), so there are more than
	// CPUs; they start when needed and live as long as the stream.
	maxWorkers = 64
	// maxTimeoutMicros caps a call's timeout (a day), so a huge value
	// cannot overflow a time.Duration.
	maxTimeoutMicros = int64(24 * time.Hour / time.Microsecond)
	// Replies that are ready go out together, up to these bounds.
	maxReplies    = 256
	maxReplyBytes = 1 << 20
)

// Methods are the HSM methods a Batch call may name: single-part
// operations, each complete in one request and safe to run concurrently
// with the others of its session.
var Methods = []string{"Encrypt", "Decrypt", "Sign", "Verify", "Digest"}

// Server serves Batch streams for srv, an HSM service implementation.
type Server struct {
	srv     any
	unary   grpc.UnaryServerInterceptor // nil: none
	methods map[string]grpc.MethodDesc
}

// NewServer returns the Batch server of srv (an hsmv1.HSMServer) whose
// calls run through unary, the gRPC server's interceptors (nil: none).
func NewServer(srv hsmv1.HSMServer, unary grpc.UnaryServerInterceptor) *Server {
	s := &Server{srv: srv, unary: unary, methods: make(map[string]grpc.MethodDesc)}
	for _, d := range hsmv1.HSM_ServiceDesc.Methods {
		if slices.Contains(Methods, d.MethodName) {
			s.methods[d.MethodName] = d
		}
	}
	return s
}

// Serve serves one Batch stream until the client ends it or the connection
// ends. It reads calls and runs each on a worker (never itself: a call may
// wait, for a catch-up, and the calls after it must not); replies are sent
// as they are ready, those ready together in one message, by whichever
// worker finds no send under way.
func (s *Server) Serve(st hsmv1.HSM_BatchServer) error {
	b := &batchRun{
		s:     s,
		st:    st,
		ctx:   st.Context(),
		calls: make(chan *hsmv1.BatchCall, maxInFlight),
		slots: make(chan struct{}, maxInFlight),
	}
	err := b.read()
	b.inFlight.Wait()
	close(b.calls) // the workers end
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		err = b.sendErr
	}
	return err
}

// batchRun is the state of one Batch stream.
type batchRun struct {
	s     *Server
	st    hsmv1.HSM_BatchServer
	ctx   context.Context
	calls chan *hsmv1.BatchCall // received, waiting for a worker
	slots chan struct{}         // one per call in flight

	inFlight sync.WaitGroup // calls received and not yet answered
	workers  int            // started (by read only)
	// free is the workers done with their calls and not yet handed another,
	// less the calls handed to none (negative: calls wait for a worker).
	free atomic.Int64

	mu      sync.Mutex
	ready   []*hsmv1.BatchReply // answered, not yet sent
	sending bool                // a goroutine is sending ready
	sendErr error               // the stream failed: replies are dropped
}

// read receives the stream's messages and hands their calls to workers,
// taking a slot for each, until the stream ends. A message beyond the
// bounds ends the stream with INVALID_ARGUMENT; the calls already taken
// are still answered.
func (b *batchRun) read() error {
	for {
		req, err := b.st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(req.GetCalls()) > MaxCalls {
			return status.Errorf(codes.InvalidArgument, "a batch of %d calls exceeds %d", len(req.GetCalls()), MaxCalls)
		}
		for _, c := range req.GetCalls() {
			if len(c.GetRequest()) > MaxCallSize {
				return status.Errorf(codes.InvalidArgument, "a batched request of %d bytes exceeds %d", len(c.GetRequest()), MaxCallSize)
			}
		}
		for _, c := range req.GetCalls() {
			select {
			case b.slots <- struct{}{}:
			case <-b.ctx.Done():
				return status.FromContextError(b.ctx.Err()).Err()
			}
			b.inFlight.Add(1)
			if b.free.Add(-1) < 0 && b.workers < maxWorkers {
				// No worker is free: a new one takes it, so a call never
				// waits behind one that is waiting.
				b.free.Add(1)
				b.workers++
				go b.work()
			}
			b.calls <- c // never blocks: the channel holds a call per slot
		}
	}
}

// work runs calls until the stream's calls end.
func (b *batchRun) work() {
	for c := range b.calls {
		b.reply(b.run(c))
		b.free.Add(1)
	}
}

// run answers one call as its unary RPC.
func (b *batchRun) run(c *hsmv1.BatchCall) *hsmv1.BatchReply {
	r := &hsmv1.BatchReply{Id: c.GetId()}
	d, ok := b.s.methods[c.GetMethod()]
	if !ok {
		r.Status = marshalStatus(status.Newf(codes.Unimplemented, "method %q is not batched", c.GetMethod()))
		return r
	}
	dec := func(m any) error { return proto.Unmarshal(c.GetRequest(), m.(proto.Message)) }
	ctx := b.ctx
	if t := c.GetTimeoutMicros(); t > 0 {
		// The caller's deadline, as a unary call's grpc-timeout gives it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(min(t, maxTimeoutMicros))*time.Microsecond)
		defer cancel()
	}
	resp, err := d.Handler(b.s.srv, ctx, dec, b.s.unary)
	if err != nil {
		r.Status = marshalStatus(status.Convert(err))
		return r
	}
	out, err := proto.Marshal(resp.(proto.Message))
	if err != nil {
		r.Status = marshalStatus(status.Newf(codes.Internal, "marshal the reply: %v", err))
		return r
	}
	r.Response = out
	return r
}

// marshalStatus is st as BatchReply.status carries it.
func marshalStatus(st *status.Status) []byte {
	b, err := proto.Marshal(st.Proto())
	if err != nil { // a status is code, message and details the node made
		b, _ = proto.Marshal(status.New(codes.Internal, "marshal a status").Proto())
	}
	return b
}

// reply queues r and, if no send is under way, sends what is ready until
// nothing is, giving back each reply's slot once it is sent (or dropped,
// after the stream failed). A send blocked by a client that does not read
// holds up only this stream: the other goroutines queue and go on.
func (b *batchRun) reply(r *hsmv1.BatchReply) {
	b.mu.Lock()
	b.ready = append(b.ready, r)
	if b.sending {
		b.mu.Unlock()
		return
	}
	b.sending = true
	for len(b.ready) > 0 {
		n, size := 0, 0
		for n < len(b.ready) && n < maxReplies && (n == 0 || size < maxReplyBytes) {
			size += len(b.ready[n].GetResponse()) + len(b.ready[n].GetStatus())
			n++
		}
		msg := &hsmv1.BatchResponse{Replies: b.ready[:n:n]}
		b.ready = b.ready[n:]
		failed := b.sendErr != nil
		b.mu.Unlock()
		var err error
		if !failed {
			err = b.st.Send(msg)
		}
		for range n {
			<-b.slots
			b.inFlight.Done()
		}
		b.mu.Lock()
		if err != nil && b.sendErr == nil {
			b.sendErr = err
		}
	}
	b.ready = nil
	b.sending = false
	b.mu.Unlock()
}
