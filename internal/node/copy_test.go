package node

import (
	"bytes"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/coffer-hsm/coffer/internal/ck"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// C_CopyObject through a node: a session key copied as a token object with
// min_nodes 2 is stored on both HSMs before the answer and usable on the
// other one with the original's material; a copy as a session object
// stays in the session; the device's refusals arrive as their CKR codes.
func TestCopyObjectReplicates(t *testing.T) {
	pki := newTestPKI(t, "cluster-copy")
	a, b, _, _ := pair(t, pki)
	ctx := t.Context()
	ca := hsmv1.NewHSMClient(dial(t, pki, a.Addr()))
	cb := hsmv1.NewHSMClient(dial(t, pki, b.Addr()))
	activate(t, ca)
	sa := cuSession(t, ca)
	var sb uint64
	eventually(t, "alice on node 2", func() bool {
		s := open(t, cb)
		_, err := cb.Login(ctx, &hsmv1.LoginRequest{Session: s, Role: "crypto-user", Username: cuName, Password: cuPW})
		sb = s
		return err == nil
	})

	orig, err := aesKey(t, ca, sa, false, 1)
	if err != nil {
		t.Fatal(err)
	}
	label := &hsmv1.Attribute{Type: uint64(ck.CKA_LABEL), Value: []byte("alias")}
	cp, err := ca.CopyObject(ctx, &hsmv1.CopyObjectRequest{
		Session: sa, Object: orig.GetObject(), MinNodes: 2,
		Template: []*hsmv1.Attribute{boolAttr(ck.CKA_TOKEN, true), label},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := cp.GetStoredOn(); !slices.Contains(got, 1) || !slices.Contains(got, 2) {
		t.Fatalf("stored on %v, want both HSMs", got)
	}
	// Node 2 has it now (min_nodes 2), with its label, and it decrypts
	// what the session original encrypts on node 1.
	attrs, err := cb.GetAttributes(ctx, &hsmv1.GetAttributesRequest{Session: sb, Object: cp.GetObject(), Types: []uint64{uint64(ck.CKA_LABEL), uint64(ck.CKA_TOKEN)}})
	if err != nil {
		t.Fatalf("the token copy is not on node 2: %v", err)
	}
	if v := attrs.GetValues(); string(v[0].GetValue()) != "alias" || !bytes.Equal(v[1].GetValue(), []byte{1}) {
		t.Fatalf("node 2's copy: %v", v)
	}
	cbc := &hsmv1.Mechanism{Type: uint64(ck.CKM_AES_CBC_PAD), Iv: make([]byte, 16)}
	ct, err := ca.Encrypt(ctx, &hsmv1.CryptRequest{Session: sa, Key: orig.GetObject(), Mechanism: cbc, Data: []byte("through a copy")})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := cb.Decrypt(ctx, &hsmv1.CryptRequest{Session: sb, Key: cp.GetObject(), Mechanism: cbc, Data: ct.GetData()})
	if err != nil || string(pt.GetData()) != "through a copy" {
		t.Fatalf("node 2 decrypts with the copy: %q, %v", pt.GetData(), err)
	}

	// A copy as a session object: in the session, on this node only.
	sc, err := ca.CopyObject(ctx, &hsmv1.CopyObjectRequest{Session: sa, Object: cp.GetObject(), Template: []*hsmv1.Attribute{boolAttr(ck.CKA_TOKEN, false)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cp.GetStoredOn(); len(sc.GetStoredOn()) != 1 || sc.GetStoredOn()[0] != 1 {
		t.Fatalf("a session copy reports stored on %v (token copy %v)", sc.GetStoredOn(), got)
	}
	_, err = cb.GetAttributes(ctx, &hsmv1.GetAttributesRequest{Session: sb, Object: sc.GetObject(), Types: []uint64{uint64(ck.CKA_LABEL)}})
	wantErr(t, err, codes.NotFound, "CKR_OBJECT_HANDLE_INVALID")

	// Refusals.
	_, err = ca.CopyObject(ctx, &hsmv1.CopyObjectRequest{Session: sa, Object: 0x1234, Template: nil})
	wantErr(t, err, codes.NotFound, "CKR_OBJECT_HANDLE_INVALID")
	_, err = ca.CopyObject(ctx, &hsmv1.CopyObjectRequest{Session: sa, Object: cp.GetObject(), Template: []*hsmv1.Attribute{boolAttr(ck.CKA_SENSITIVE, false)}})
	wantErr(t, err, codes.FailedPrecondition, "CKR_ATTRIBUTE_READ_ONLY")
	noCopy, err := ca.CopyObject(ctx, &hsmv1.CopyObjectRequest{Session: sa, Object: cp.GetObject(), Template: []*hsmv1.Attribute{boolAttr(ck.CKA_COPYABLE, false), boolAttr(ck.CKA_TOKEN, false)}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ca.CopyObject(ctx, &hsmv1.CopyObjectRequest{Session: sa, Object: noCopy.GetObject()})
	wantErr(t, err, codes.PermissionDenied, "CKR_ACTION_PROHIBITED")
	_, err = ca.CopyObject(ctx, &hsmv1.CopyObjectRequest{Session: open(t, ca), Object: cp.GetObject()})
	wantErr(t, err, codes.Unauthenticated, "CKR_USER_NOT_LOGGED_IN")
}
