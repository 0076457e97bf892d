package client

import (
	"errors"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// A node session can vanish behind a live member: the HSM closes the
// sessions of a connection that ended, and gRPC reconnects by itself. A
// multi-part step of such a session is a lost operation
// (CKR_OPERATION_NOT_INITIALIZED), not CKR_SESSION_HANDLE_INVALID (the
// caller's session is fine), and the next request logs in again.
func TestOperationLostWithForgottenSession(t *testing.T) {
	w, pki := newFakeCluster(t, 1)
	c := dial(t, testConfig(w, pki))
	s := login(t, c)
	key := replicatedKey(t, s, 1)
	op, err := s.Begin(t.Context(), FnSign, key, hmac)
	if err != nil {
		t.Fatal(err)
	}
	w.servers[0].forgetSessions()
	_, err = op.Update(t.Context(), []byte("m"))
	if !errors.Is(err, ErrOperationLost) || Code(err) != ck.CKR_OPERATION_NOT_INITIALIZED {
		t.Fatalf("Update in a forgotten session: %v (%v), want ErrOperationLost / CKR_OPERATION_NOT_INITIALIZED", err, Code(err))
	}
	logins := w.servers[0].logins.Load()
	if _, err := s.Sign(t.Context(), key, hmac, []byte("m")); err != nil {
		t.Fatalf("Sign after the lost operation: %v", err)
	}
	if got := w.servers[0].logins.Load() - logins; got != 1 {
		t.Fatalf("%d logins after the lost operation, want 1", got)
	}
}
