package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// The client side. A call that finds no send under way on its stream sends
// at once (alone, so a lone call waits for nothing); the calls that arrive
// while a send is under way go together in the next one.

// maxBytes bounds the requests of one client message.
const maxBytes = 512 << 10

// ErrUnsupported: the HSM does not serve Batch (it predates it); the call
// was not sent, and should go as its own RPC.
var ErrUnsupported = errors.New("batch: HSM does not serve Batch")

// Client sends one HSM's batched calls, on one stream at a time: a stream
// is replaced when it ends and when the context it was opened in (from
// Life) ends.
type Client struct {
	// Life returns the context a new stream lives within: the HSM
	// connection's current life (it ends when the HSM is marked down).
	life func() context.Context
	open func(ctx context.Context) (hsmv1.HSM_BatchClient, error)

	mu  sync.Mutex
	cur *stream // nil, or the stream new calls join

	off   atomic.Bool   // the HSM does not serve Batch
	ids   atomic.Uint64 // call ids
	sends atomic.Int64  // messages sent
}

// NewClient returns a Client opening its streams with open, each within
// the context life returns at the time.
func NewClient(life func() context.Context, open func(ctx context.Context) (hsmv1.HSM_BatchClient, error)) *Client {
	return &Client{life: life, open: open}
}

// Supported reports whether the HSM may serve Batch: false once it said
// it does not.
func (b *Client) Supported() bool { return !b.off.Load() }

// Sends is how many messages the client sent.
func (b *Client) Sends() int64 { return b.sends.Load() }

// stream is one Batch stream and its calls in flight.
type stream struct {
	b      *Client
	life   context.Context // the context it was opened within
	stream hsmv1.HSM_BatchClient
	cancel context.CancelFunc

	mu      sync.Mutex
	waiting map[uint64]*call // sent or queued, not answered
	queue   []*call          // to send
	sending bool             // a caller is sending the queue
	err     error            // set once the stream failed
	replied bool             // a reply came: the HSM serves Batch
}

// call is one request on a stream.
type call struct {
	msg   *hsmv1.BatchCall
	done  chan struct{} // closed when reply or err is set
	reply *hsmv1.BatchReply
	err   error
}

// Call sends method's request body and waits for its reply, or for ctx
// (then the reply, if one comes, is dropped). It returns ErrUnsupported if
// the HSM does not serve Batch, or the error that ended the stream.
func (b *Client) Call(ctx context.Context, method string, body []byte) (*hsmv1.BatchReply, error) {
	c := &call{
		msg:  &hsmv1.BatchCall{Id: b.ids.Add(1), Method: method, Request: body},
		done: make(chan struct{}),
	}
	if d, ok := ctx.Deadline(); ok {
		c.msg.TimeoutMicros = max(time.Until(d).Microseconds(), 1)
	}
	s, err := b.current()
	if err != nil {
		return nil, err
	}
	s.submit(c)
	select {
	case <-c.done:
		return c.reply, c.err
	case <-ctx.Done():
		s.forget(c)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// current returns the stream new calls join, opening one if there is none
// or the one there ended.
func (b *Client) current() (*stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	life := b.life()
	if s := b.cur; s != nil {
		s.mu.Lock()
		ok := s.err == nil && s.life == life
		s.mu.Unlock()
		if ok {
			return s, nil
		}
		s.fail(errors.New("stream replaced"))
	}
	ctx, cancel := context.WithCancel(life)
	st, err := b.open(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &stream{b: b, life: life, stream: st, cancel: cancel, waiting: make(map[uint64]*call)}
	b.cur = s
	go s.receive()
	return s, nil
}

// submit queues c and, if no send is under way, sends the queue until it
// is empty: the first request alone, those that came meanwhile together.
func (s *stream) submit(c *call) {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		c.err = err
		close(c.done)
		return
	}
	s.waiting[c.msg.Id] = c
	s.queue = append(s.queue, c)
	if s.sending {
		s.mu.Unlock()
		return
	}
	s.sending = true
	for len(s.queue) > 0 && s.err == nil {
		msg := &hsmv1.BatchRequest{}
		size, n := 0, 0
		for n < len(s.queue) && n < MaxCalls && (n == 0 || size+len(s.queue[n].msg.Request) <= maxBytes) {
			size += len(s.queue[n].msg.Request)
			n++
		}
		for _, q := range s.queue[:n] {
			if _, ok := s.waiting[q.msg.Id]; ok { // not given up meanwhile
				msg.Calls = append(msg.Calls, q.msg)
			}
		}
		s.queue = append(s.queue[:0:0], s.queue[n:]...)
		s.mu.Unlock()
		var err error
		if len(msg.Calls) > 0 {
			err = s.stream.Send(msg)
			s.b.sends.Add(1)
		}
		s.mu.Lock()
		if err != nil {
			// The stream ended; receive learns why and fails the calls.
			s.queue = nil
		}
	}
	s.sending = false
	s.mu.Unlock()
}

// forget drops a call its caller gave up on; its reply, if one comes, is
// discarded.
func (s *stream) forget(c *call) {
	s.mu.Lock()
	delete(s.waiting, c.msg.Id)
	s.mu.Unlock()
}

// receive hands each reply to its call until the stream ends, then fails
// the calls still waiting.
func (s *stream) receive() {
	for {
		r, err := s.stream.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		s.replied = true
		for _, reply := range r.GetReplies() {
			if c, ok := s.waiting[reply.GetId()]; ok {
				delete(s.waiting, reply.GetId())
				c.reply = reply
				close(c.done)
			}
		}
		s.mu.Unlock()
	}
}

// fail ends the stream with err and fails its calls: with
// ErrUnsupported if the HSM answered that it does not serve Batch
// before anything else (so the calls go as their own RPCs, never sent).
func (s *stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		if status.Code(err) == codes.Unimplemented && !s.replied {
			s.b.off.Store(true)
			err = ErrUnsupported
		}
		s.err = err
	}
	waiting := s.waiting
	s.waiting = make(map[uint64]*call)
	err = s.err
	s.mu.Unlock()
	s.cancel()
	for _, c := range waiting {
		c.err = err
		close(c.done)
	}
}
