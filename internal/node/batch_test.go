package node

import (
	"errors"
	"io"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// batchCall is a BatchCall of method with req marshalled.
func batchCall(t testing.TB, id uint64, method string, req proto.Message) *hsmv1.BatchCall {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return &hsmv1.BatchCall{Id: id, Method: method, Request: b}
}

// sendBatch sends calls in one message on st and returns the replies by
// id, as the response bytes or the error the unary RPC would have ended
// with.
func sendBatch(t testing.TB, st hsmv1.HSM_BatchClient, calls ...*hsmv1.BatchCall) (map[uint64][]byte, map[uint64]error) {
	t.Helper()
	if err := st.Send(&hsmv1.BatchRequest{Calls: calls}); err != nil {
		t.Fatalf("send a batch: %v", err)
	}
	out, errs := map[uint64][]byte{}, map[uint64]error{}
	for len(out)+len(errs) < len(calls) {
		r, err := st.Recv()
		if err != nil {
			t.Fatalf("receive a batch: %v", err)
		}
		for _, rep := range r.GetReplies() {
			if len(rep.GetStatus()) == 0 {
				out[rep.GetId()] = rep.GetResponse()
				continue
			}
			var s spb.Status
			if err := proto.Unmarshal(rep.GetStatus(), &s); err != nil {
				t.Fatalf("reply %d: status: %v", rep.GetId(), err)
			}
			errs[rep.GetId()] = status.ErrorProto(&s)
		}
	}
	return out, errs
}

// TestBatchKeepsTheRules: a batched call is held to every rule of its
// unary RPC. A session is good only on its own connection; a method the
// node does not batch, a request that does not parse and a message beyond
// the bounds are refused; the stream goes on serving after a refused call,
// and the node after a refused stream.
func TestBatchKeepsTheRules(t *testing.T) {
	pki := newTestPKI(t, "cluster-batch")
	n := start(t, config(t, pki, 1, MasterKeyCreate))
	eventually(t, "ready", n.Ready)
	ctx := t.Context()
	owner := hsmv1.NewHSMClient(dial(t, pki, n.Addr()))
	activate(t, owner)
	s := cuSession(t, owner)
	digest := func(sid uint64) *hsmv1.CryptRequest {
		return &hsmv1.CryptRequest{Session: sid, Mechanism: mechOf(ck.CKM_SHA256), Data: []byte("abc")}
	}

	own, err := owner.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, errs := sendBatch(t, own,
		batchCall(t, 1, "Digest", digest(s)),
		batchCall(t, 2, "Digest", digest(s)),
		batchCall(t, 3, "ExportKey", &hsmv1.ObjectRequest{Session: s, Object: 1}),
		&hsmv1.BatchCall{Id: 4, Method: "Digest", Request: []byte{0xff, 0xff, 0xff}},
		batchCall(t, 5, "Digest", digest(12345)),
	)
	for _, id := range []uint64{1, 2} {
		var r hsmv1.BytesResponse
		if err := proto.Unmarshal(out[id], &r); err != nil || len(r.GetData()) != 32 {
			t.Errorf("call %d: %v, %v; want a SHA-256 digest", id, &r, errs[id])
		}
	}
	if status.Code(errs[3]) != codes.Unimplemented {
		t.Errorf("batched ExportKey: %v, want Unimplemented", errs[3])
	}
	if errs[4] == nil {
		t.Error("a batched request that does not parse was answered")
	}
	wantErr(t, errs[5], codes.NotFound, "CKR_SESSION_HANDLE_INVALID")

	// The owner's session, named on another connection's stream, is no
	// session there.
	other, err := hsmv1.NewHSMClient(dial(t, pki, n.Addr())).Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, errs = sendBatch(t, other, batchCall(t, 1, "Digest", digest(s)), batchCall(t, 2, "Sign", &hsmv1.CryptRequest{Session: s, Key: 1}))
	for id, err := range errs {
		wantErr(t, err, codes.NotFound, "CKR_SESSION_HANDLE_INVALID")
		delete(errs, id)
	}
	if len(errs) != 0 || len(out) == 0 {
		t.Fatalf("unexpected replies")
	}

	// A message beyond the bounds ends its stream, and only that.
	calls := make([]*hsmv1.BatchCall, 257)
	for i := range calls {
		calls[i] = batchCall(t, uint64(i+1), "Digest", digest(s))
	}
	if err := other.Send(&hsmv1.BatchRequest{Calls: calls}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	for {
		_, err := other.Recv()
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("a batch of 257 calls ended the stream with %v, want InvalidArgument", err)
			}
			break
		}
	}
	if _, errs := sendBatch(t, own, batchCall(t, 6, "Digest", digest(s))); len(errs) != 0 {
		t.Errorf("the owner's stream after another's was refused: %v", errs)
	}
	if err := own.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := own.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("stream closed by the client ends with %v, want EOF", err)
	}
}
