package node

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// A creation resent to the other node with the same idempotency token makes
// one key on both nodes in the end: the resend's, which the client was told
// about; the first send's key, replicated before the resend, is destroyed
// on both.
func TestResentCreationKeepsOneKey(t *testing.T) {
	pki := newTestPKI(t, "cluster-resend")
	a, b, _, _ := pair(t, pki)
	ctx := t.Context()
	ca := hsmv1.NewHSMClient(dial(t, pki, a.Addr()))
	cb := hsmv1.NewHSMClient(dial(t, pki, b.Addr()))
	activate(t, ca)
	var sb uint64
	eventually(t, "alice on node 2", func() bool {
		s := open(t, cb)
		_, err := cb.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: cuName, Password: cuPW})
		sb = s
		return err == nil
	})
	sa := cuSession(t, ca)
	token := []byte("resent-creation-token-0001")
	gen := func(c hsmv1.HSMClient, s uint64, idem *hsmv1.Idempotency) (*hsmv1.CreateResponse, error) {
		return c.GenerateKey(ctx, &hsmv1.GenerateKeyRequest{
			Session: s, Mechanism: mechOf(ck.CKM_AES_KEY_GEN), Idempotency: idem,
			Template: []*hsmv1.Attribute{ulongAttr(ck.CKA_VALUE_LEN, 32), boolAttr(ck.CKA_TOKEN, true)},
		})
	}
	tokens := func(c hsmv1.HSMClient, s uint64) []uint64 {
		r, err := c.FindObjects(ctx, &hsmv1.FindObjectsRequest{Session: s, Template: []*hsmv1.Attribute{boolAttr(ck.CKA_TOKEN, true)}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetObjects()
	}

	first, err := gen(ca, sa, &hsmv1.Idempotency{Token: token, Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first send's key on node 2", func() bool { return slices.Contains(tokens(cb, sb), first.GetObject()) })
	resent, err := gen(cb, sb, &hsmv1.Idempotency{Token: token, Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	if resent.GetObject() == first.GetObject() {
		t.Fatal("the resend reused the first send's id")
	}
	for name, n := range map[string]struct {
		c hsmv1.HSMClient
		s uint64
	}{"node 1": {ca, sa}, "node 2": {cb, sb}} {
		eventually(t, name+" holds only the resend's key", func() bool {
			return slices.Equal(tokens(n.c, n.s), []uint64{resent.GetObject()})
		})
	}

	t.Run("bad idempotency is refused", func(t *testing.T) {
		for _, idem := range []*hsmv1.Idempotency{{Token: []byte("short"), Attempt: 1}, {Token: token, Attempt: 0}, {Token: token, Attempt: 9}} {
			_, err := gen(ca, sa, idem)
			wantErr(t, err, codes.InvalidArgument, "CKR_ARGUMENTS_BAD")
		}
	})
}
