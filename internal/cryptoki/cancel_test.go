package cryptoki

import (
	"bytes"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// TestSignFinalTwoCall: C_SignFinal's length query (pSignature NULL) and a
// too-small buffer keep the operation, with its one signature, for the
// call that fetches it; that call ends it.
func TestSignFinalTwoCall(t *testing.T) {
	m, _, h := loggedIn(t)
	ctx := t.Context()
	key, rv := m.CreateObject(ctx, h, nil)
	must(t, rv)
	must(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	_, rv = m.Update(ctx, h, OpSign, []byte("message"), nil, false)
	must(t, rv)
	n, rv := m.Final(ctx, h, OpSign, nil, true)
	must(t, rv)
	_, rv = m.Final(ctx, h, OpSign, make([]byte, 1), false)
	wantRV(t, rv, ck.CKR_BUFFER_TOO_SMALL)
	wantRV(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key), ck.CKR_OPERATION_ACTIVE)
	sig := make([]byte, n)
	n2, rv := m.Final(ctx, h, OpSign, sig, false)
	must(t, rv)
	if n2 != n || !bytes.Equal(sig, signOnce(t, m, h, key, "message")) {
		t.Fatalf("signature %x (%d bytes), want the one of the operation (%d bytes)", sig[:n2], n2, n)
	}
	_, rv = m.Final(ctx, h, OpSign, sig, false)
	wantRV(t, rv, ck.CKR_OPERATION_NOT_INITIALIZED)
	must(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
}

// TestSessionCancel: C_SessionCancel ends the operations its flags name,
// single- or multi-part, and leaves the others; flags of operations that
// are not active are ignored.
func TestSessionCancel(t *testing.T) {
	m, _, h := loggedIn(t)
	ctx := t.Context()
	key, rv := m.CreateObject(ctx, h, nil)
	must(t, rv)
	wantRV(t, m.SessionCancel(ctx, 424242, ck.CKF_SIGN), ck.CKR_SESSION_HANDLE_INVALID)
	must(t, m.SessionCancel(ctx, h, ck.CKF_SIGN|ck.CKF_VERIFY|ck.CKF_ENCRYPT|ck.CKF_DECRYPT|ck.CKF_DIGEST|ckfFindObjects))

	must(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	_, rv = m.Update(ctx, h, OpSign, []byte("abandoned"), nil, false)
	must(t, rv)
	must(t, m.Init(ctx, h, OpVerify, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	must(t, m.Init(ctx, h, OpDigest, client.Mechanism{Type: ck.CKM_SHA256}, 0))
	must(t, m.FindObjectsInit(ctx, h, nil))

	must(t, m.SessionCancel(ctx, h, ck.CKF_SIGN|ck.CKF_DIGEST))
	_, rv = m.Final(ctx, h, OpSign, nil, true)
	wantRV(t, rv, ck.CKR_OPERATION_NOT_INITIALIZED)
	_, rv = m.Final(ctx, h, OpDigest, nil, true)
	wantRV(t, rv, ck.CKR_OPERATION_NOT_INITIALIZED)
	wantRV(t, m.Init(ctx, h, OpVerify, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key), ck.CKR_OPERATION_ACTIVE)
	wantRV(t, m.FindObjectsInit(ctx, h, nil), ck.CKR_OPERATION_ACTIVE)

	// A new operation after the cancel is a fresh one.
	must(t, m.Init(ctx, h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	_, rv = m.Update(ctx, h, OpSign, []byte("message"), nil, false)
	must(t, rv)
	sig := make([]byte, 64)
	n, rv := m.Final(ctx, h, OpSign, sig, false)
	must(t, rv)
	if !bytes.Equal(sig[:n], signOnce(t, m, h, key, "message")) {
		t.Fatal("the operation after the cancel signed the abandoned one's input too")
	}

	must(t, m.SessionCancel(ctx, h, ck.CKF_VERIFY|ckfFindObjects))
	must(t, m.Init(ctx, h, OpVerify, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	must(t, m.FindObjectsInit(ctx, h, nil))
}

// signOnce signs data in one part (C_SignInit, C_Sign).
func signOnce(t *testing.T, m *Module, h SessionHandle, key ObjectHandle, data string) []byte {
	t.Helper()
	must(t, m.Init(t.Context(), h, OpSign, client.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	sig := make([]byte, 64)
	n, rv := m.Single(t.Context(), h, OpSign, []byte(data), sig, false)
	must(t, rv)
	return sig[:n]
}
