package batch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// fakeStream is a Batch stream whose sends the test holds and releases and
// whose replies the test gives.
type fakeStream struct {
	grpc.ClientStream // nil: only Send and Recv are used
	ctx               context.Context
	sent              chan *hsmv1.BatchRequest // each Send, before it returns
	release           chan struct{}            // a Send returns once it can take from here
	replies           chan *hsmv1.BatchResponse
	end               chan error // Recv returns this once sent
}

func newFakeStream(ctx context.Context) *fakeStream {
	return &fakeStream{ctx: ctx, sent: make(chan *hsmv1.BatchRequest, 100), release: make(chan struct{}, 100),
		replies: make(chan *hsmv1.BatchResponse, 100), end: make(chan error, 1)}
}

func (f *fakeStream) Send(m *hsmv1.BatchRequest) error {
	f.sent <- m
	select {
	case <-f.release:
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

func (f *fakeStream) Recv() (*hsmv1.BatchResponse, error) {
	select {
	case r := <-f.replies:
		return r, nil
	case err := <-f.end:
		return nil, err
	case <-f.ctx.Done():
		return nil, status.FromContextError(f.ctx.Err()).Err()
	}
}

// clientOf returns a Client whose streams are fakes, handed to the test on
// the returned channel as they open.
func clientOf(t *testing.T) (*Client, chan *fakeStream) {
	opened := make(chan *fakeStream, 10)
	c := NewClient(t.Context, func(ctx context.Context) (hsmv1.HSM_BatchClient, error) {
		f := newFakeStream(ctx)
		opened <- f
		return f, nil
	})
	return c, opened
}

// answer replies to every call of m, each with its own id as the response.
func answer(f *fakeStream, m *hsmv1.BatchRequest) {
	r := &hsmv1.BatchResponse{}
	for _, c := range m.GetCalls() {
		r.Replies = append(r.Replies, &hsmv1.BatchReply{Id: c.GetId(), Response: c.GetRequest()})
	}
	f.replies <- r
}

// A lone call is sent at once, alone; the calls that come while a send is
// under way go together in the next message, and each caller gets its own
// reply.
func TestCallsWaitingGoTogether(t *testing.T) {
	c, opened := clientOf(t)
	type result struct {
		body string
		err  error
	}
	results := make(chan result, 20)
	call := func(body string) {
		r, err := c.Call(t.Context(), "Sign", []byte(body))
		results <- result{string(r.GetResponse()), err}
	}
	go call("first")
	f := <-opened
	first := <-f.sent // held in Send: the calls now queue behind it
	if n := len(first.GetCalls()); n != 1 {
		t.Fatalf("first message has %d calls, want 1", n)
	}
	for i := range 10 {
		go call(string(rune('a' + i)))
	}
	for queued := 0; queued < 10; {
		time.Sleep(time.Millisecond)
		c.mu.Lock()
		st := c.cur
		c.mu.Unlock()
		st.mu.Lock()
		queued = len(st.queue)
		st.mu.Unlock()
	}
	f.release <- struct{}{} // the first send returns; what queued goes next
	next := <-f.sent
	if n := len(next.GetCalls()); n != 10 {
		t.Fatalf("second message has %d calls, want the 10 that queued", n)
	}
	f.release <- struct{}{}
	answer(f, first)
	answer(f, next)
	got := map[string]bool{}
	for range 11 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		got[r.body] = true
	}
	if len(got) != 11 {
		t.Errorf("replies %v: each caller should get its own", got)
	}
	if n := c.Sends(); n != 2 {
		t.Errorf("%d messages sent, want 2", n)
	}
}

// A stream that ends fails its calls with its error; the next call opens a
// new stream. A stream the HSM does not serve fails them with
// ErrUnsupported, and the Client stops batching.
func TestStreamEnds(t *testing.T) {
	c, opened := clientOf(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(t.Context(), "Sign", []byte("x"))
		errc <- err
	}()
	f := <-opened
	<-f.sent
	f.release <- struct{}{}
	f.end <- status.Error(codes.Unavailable, "connection reset")
	if err := <-errc; status.Code(err) != codes.Unavailable {
		t.Fatalf("call on a broken stream: %v, want Unavailable", err)
	}

	go func() {
		_, err := c.Call(t.Context(), "Sign", []byte("x"))
		errc <- err
	}()
	f = <-opened // a new stream
	<-f.sent
	f.release <- struct{}{}
	f.end <- status.Error(codes.Unimplemented, "unknown method Batch")
	if err := <-errc; !errors.Is(err, ErrUnsupported) {
		t.Fatalf("call on a stream the HSM does not serve: %v, want ErrUnsupported", err)
	}
	if c.Supported() {
		t.Error("the Client still batches for an HSM that does not serve Batch")
	}
}

// A caller that gives up returns at once; its reply, when it comes, is
// dropped and the stream goes on.
func TestCallerGivesUp(t *testing.T) {
	c, opened := clientOf(t)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "Sign", []byte("x"))
		errc <- err
	}()
	f := <-opened
	m := <-f.sent
	f.release <- struct{}{}
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: %v, want Canceled", err)
	}
	answer(f, m) // late: dropped

	var wg sync.WaitGroup
	wg.Go(func() {
		r, err := c.Call(t.Context(), "Sign", []byte("y"))
		if err != nil || string(r.GetResponse()) != "y" {
			t.Errorf("call after one gave up: %v, %v", r, err)
		}
	})
	m = <-f.sent // the same stream
	f.release <- struct{}{}
	answer(f, m)
	wg.Wait()
}
