package cryptoki

import (
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/client"
)

// C_CopyObject in the module: a token copy needs a read/write session,
// also when the template is silent and the original is a token object; a
// session copy is made in a read-only session and goes with its session;
// a handle of no object, or of a closed session's object, is refused.
func TestCopyObjectSessions(t *testing.T) {
	m, _, rw := loggedIn(t)
	ro := open(t, m, false)
	ctx := t.Context()
	aes := client.Mechanism{Type: ck.CKM_AES_KEY_GEN}
	tok, rv := m.GenerateKey(ctx, rw, aes, []client.Attribute{client.Bool(ck.CKA_TOKEN, true)})
	must(t, rv)
	sess, rv := m.GenerateKey(ctx, rw, aes, nil)
	must(t, rv)

	_, rv = m.CopyObject(ctx, ro, tok, nil) // the copy of a token object is one
	wantRV(t, rv, ck.CKR_SESSION_READ_ONLY)
	_, rv = m.CopyObject(ctx, ro, sess, []client.Attribute{client.Bool(ck.CKA_TOKEN, true)})
	wantRV(t, rv, ck.CKR_SESSION_READ_ONLY)
	roCopy, rv := m.CopyObject(ctx, ro, tok, []client.Attribute{client.Bool(ck.CKA_TOKEN, false)})
	must(t, rv)
	tokCopy, rv := m.CopyObject(ctx, rw, sess, []client.Attribute{client.Bool(ck.CKA_TOKEN, true)})
	must(t, rv)
	if tokCopy == sess || roCopy == tok {
		t.Fatal("a copy has its original's handle")
	}
	_, rv = m.CopyObject(ctx, rw, 999999, nil)
	wantRV(t, rv, ck.CKR_OBJECT_HANDLE_INVALID)
	_, rv = m.CopyObject(ctx, 999999, tok, nil)
	wantRV(t, rv, ck.CKR_SESSION_HANDLE_INVALID)

	req := []AttributeRequest{{Type: ck.CKA_TOKEN, Query: true}}
	must(t, m.CloseSession(ctx, ro))
	wantRV(t, m.GetAttributeValue(ctx, rw, roCopy, req), ck.CKR_OBJECT_HANDLE_INVALID)
	must(t, m.GetAttributeValue(ctx, rw, tokCopy, req))
}
