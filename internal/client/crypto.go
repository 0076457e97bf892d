package client

import (
	"context"

	"google.golang.org/grpc"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Single-part operations: each is one request, idempotent, resent to another
// HSM holding the key after a transport failure.

// They travel on the HSM's Batch stream (batch.go), method naming the RPC.
func (s *Session) crypt(ctx context.Context, op, method string, key ObjectID, mech Mechanism, data []byte,
	send func(hsmv1.HSMClient, context.Context, *hsmv1.CryptRequest, ...grpc.CallOption) (*hsmv1.BytesResponse, error)) ([]byte, error) {
	var objs []ObjectID
	if key != 0 {
		objs = []ObjectID{key}
	}
	wm := mech.wire()
	return s.bytes(ctx, call{op: op, retry: true, objs: objs}, func(ctx context.Context, m *member, sid uint64) (*hsmv1.BytesResponse, error) {
		req := &hsmv1.CryptRequest{Session: sid, Key: uint64(key), Mechanism: wm, Data: data}
		return batchRequest(ctx, m, method, req, new(hsmv1.BytesResponse), func(ctx context.Context, req *hsmv1.CryptRequest, opts ...grpc.CallOption) (*hsmv1.BytesResponse, error) {
			return send(m.rpc, ctx, req, opts...)
		})
	})
}

// Encrypt encrypts data with key.
func (s *Session) Encrypt(ctx context.Context, key ObjectID, mech Mechanism, data []byte) ([]byte, error) {
	return s.crypt(ctx, "encrypt", "Encrypt", key, mech, data, hsmv1.HSMClient.Encrypt)
}

// EncryptIV is Encrypt that also returns the IV the HSM generated: for
// CKM_AES_GCM with a 12-byte all-zero IV the HSM encrypts under a fresh
// random IV, never the zero one, and for CKM_CLOUDHSM_AES_GCM it always
// chooses the IV (which also leads the ciphertext). iv is nil when the
// caller's IV was used. A resent request gets a new IV; the one returned
// is that of the ciphertext returned.
func (s *Session) EncryptIV(ctx context.Context, key ObjectID, mech Mechanism, data []byte) (out, iv []byte, err error) {
	wm := mech.wire()
	_, err = s.c.invoke(ctx, s, call{op: "encrypt", retry: true, objs: []ObjectID{key}}, func(ctx context.Context, m *member, sid uint64) error {
		r, err := batchRequest(ctx, m, "Encrypt", &hsmv1.CryptRequest{Session: sid, Key: uint64(key), Mechanism: wm, Data: data},
			new(hsmv1.BytesResponse), m.rpc.Encrypt)
		out, iv = r.GetData(), r.GetIv()
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return out, iv, nil
}

// Decrypt decrypts data with key.
func (s *Session) Decrypt(ctx context.Context, key ObjectID, mech Mechanism, data []byte) ([]byte, error) {
	return s.crypt(ctx, "decrypt", "Decrypt", key, mech, data, hsmv1.HSMClient.Decrypt)
}

// Sign signs (or MACs) data with key.
func (s *Session) Sign(ctx context.Context, key ObjectID, mech Mechanism, data []byte) ([]byte, error) {
	return s.crypt(ctx, "sign", "Sign", key, mech, data, hsmv1.HSMClient.Sign)
}

// Digest hashes data.
func (s *Session) Digest(ctx context.Context, mech Mechanism, data []byte) ([]byte, error) {
	return s.crypt(ctx, "digest", "Digest", 0, mech, data, hsmv1.HSMClient.Digest)
}

// Verify checks signature over data with key; a bad signature is an *Error
// with CKR_SIGNATURE_INVALID.
func (s *Session) Verify(ctx context.Context, key ObjectID, mech Mechanism, data, signature []byte) error {
	wm := mech.wire()
	_, err := s.c.invoke(ctx, s, call{op: "verify", retry: true, objs: []ObjectID{key}}, func(ctx context.Context, m *member, sid uint64) error {
		_, err := batchRequest(ctx, m, "Verify", &hsmv1.VerifyRequest{Session: sid, Key: uint64(key), Mechanism: wm, Data: data, Signature: signature},
			new(hsmv1.Empty), m.rpc.Verify)
		return err
	})
	return err
}

// WrapKey wraps key with wrappingKey.
func (s *Session) WrapKey(ctx context.Context, wrappingKey ObjectID, mech Mechanism, key ObjectID) ([]byte, error) {
	wm := mech.wire()
	return s.bytes(ctx, call{op: "wrap key", retry: true, objs: []ObjectID{wrappingKey, key}}, func(ctx context.Context, m *member, sid uint64) (*hsmv1.BytesResponse, error) {
		return m.rpc.WrapKey(ctx, &hsmv1.WrapKeyRequest{Session: sid, WrappingKey: uint64(wrappingKey), Mechanism: wm, Key: uint64(key)})
	})
}

// WrapKeyIV is WrapKey that also returns the IV the HSM generated (AES-GCM
// under a zeroed IV, or CKM_CLOUDHSM_AES_GCM; see EncryptIV), nil if none.
func (s *Session) WrapKeyIV(ctx context.Context, wrappingKey ObjectID, mech Mechanism, key ObjectID) (out, iv []byte, err error) {
	wm := mech.wire()
	_, err = s.c.invoke(ctx, s, call{op: "wrap key", retry: true, objs: []ObjectID{wrappingKey, key}}, func(ctx context.Context, m *member, sid uint64) error {
		r, err := m.rpc.WrapKey(ctx, &hsmv1.WrapKeyRequest{Session: sid, WrappingKey: uint64(wrappingKey), Mechanism: wm, Key: uint64(key)})
		out, iv = r.GetData(), r.GetIv()
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return out, iv, nil
}

// GenerateRandom returns n random bytes from an HSM.
func (s *Session) GenerateRandom(ctx context.Context, n int) ([]byte, error) {
	return s.bytes(ctx, call{op: "generate random", retry: true}, func(ctx context.Context, m *member, sid uint64) (*hsmv1.BytesResponse, error) {
		return m.rpc.GenerateRandom(ctx, &hsmv1.RandomRequest{Session: sid, Length: uint32(n)})
	})
}

// Operation is a multi-part operation. It runs on the HSM it began on; if
// that HSM fails, the operation is lost (ErrOperationLost, or an
// *UnknownOutcomeError for the step in flight). An Operation is used by one
// goroutine at a time, like a PKCS#11 session's operation.
type Operation struct {
	s     *Session
	m     *member
	epoch uint64
	sid   uint64
	id    uint64
}

// HSM is the address of the HSM the operation runs on.
func (o *Operation) HSM() string { return o.m.addr }

// Begin starts a multi-part operation (C_*Init). key is zero for FnDigest.
// Begin is resent to another HSM after a transport failure: the failed HSM's
// node session is abandoned with it, so a half-begun operation there cannot
// get in the way.
func (s *Session) Begin(ctx context.Context, fn Function, key ObjectID, mech Mechanism) (*Operation, error) {
	var objs []ObjectID
	if key != 0 {
		objs = []ObjectID{key}
	}
	wm := mech.wire()
	op := &Operation{s: s}
	m, err := s.c.invoke(ctx, s, call{op: "begin", retry: true, objs: objs, multiPart: true}, func(ctx context.Context, m *member, sid uint64) error {
		op.sid, op.epoch = sid, m.epoch.Load()
		if cur := s.node(m.idx).cur.Load(); cur != nil && cur.id == sid {
			op.epoch = cur.epoch
		}
		r, err := m.rpc.Begin(ctx, &hsmv1.BeginRequest{Session: sid, Function: hsmv1.Function(fn), Key: uint64(key), Mechanism: wm})
		op.id = r.GetOperation()
		return err
	})
	if err != nil {
		return nil, err
	}
	op.m = m
	return op, nil
}

func (o *Operation) step(op string) call {
	return call{op: op, pin: o.m, pinEpoch: o.epoch, pinSID: o.sid, multiPart: true}
}

// Update feeds data; encryption and decryption return the output so far.
func (o *Operation) Update(ctx context.Context, data []byte) ([]byte, error) {
	return o.s.bytes(ctx, o.step("update"), func(ctx context.Context, m *member, sid uint64) (*hsmv1.BytesResponse, error) {
		return m.rpc.Update(ctx, &hsmv1.UpdateRequest{Session: sid, Operation: o.id, Data: data})
	})
}

// Finish ends the operation and returns its last output (the signature, the
// digest, the rest of the plaintext...). For FnVerify it takes the signature
// and returns nothing.
func (o *Operation) Finish(ctx context.Context, signature []byte) ([]byte, error) {
	return o.s.bytes(ctx, o.step("finish"), func(ctx context.Context, m *member, sid uint64) (*hsmv1.BytesResponse, error) {
		return m.rpc.Finish(ctx, &hsmv1.FinishRequest{Session: sid, Operation: o.id, Signature: signature})
	})
}

// FinishIV is Finish that also returns the IV the HSM generated for a
// multi-part AES-GCM encryption (see EncryptIV), nil otherwise.
func (o *Operation) FinishIV(ctx context.Context, signature []byte) (out, iv []byte, err error) {
	_, err = o.s.c.invoke(ctx, o.s, o.step("finish"), func(ctx context.Context, m *member, sid uint64) error {
		r, err := m.rpc.Finish(ctx, &hsmv1.FinishRequest{Session: sid, Operation: o.id, Signature: signature})
		out, iv = r.GetData(), r.GetIv()
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return out, iv, nil
}

// Abort ends the operation without a result.
func (o *Operation) Abort(ctx context.Context) error {
	_, err := o.s.c.invoke(ctx, o.s, o.step("abort"), func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.Abort(ctx, &hsmv1.OperationRequest{Session: sid, Operation: o.id})
		return err
	})
	return err
}
