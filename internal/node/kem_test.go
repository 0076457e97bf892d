package node

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// TestPQAcrossNodes: ML-DSA and ML-KEM token keys made on node 1 with
// min_nodes 2 work on node 2 at once (the ML-KEM record, which has its own
// encoding, travels); a secret encapsulated on node 1 with min_nodes 2
// decapsulates to the same value on node 2, and the reply carries the
// ciphertext.
func TestPQAcrossNodes(t *testing.T) {
	pki := newTestPKI(t, "cluster-pq")
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
	gen := func(m ck.MechanismType, ps ck.ParameterSet) *hsmv1.GenerateKeyPairResponse {
		t.Helper()
		r, err := ca.GenerateKeyPair(ctx, &hsmv1.GenerateKeyPairRequest{
			Session: sa, Mechanism: mechOf(m), MinNodes: 2,
			PublicTemplate:  []*hsmv1.Attribute{ulongAttr(ck.CKA_PARAMETER_SET, uint64(ps)), boolAttr(ck.CKA_TOKEN, true)},
			PrivateTemplate: []*hsmv1.Attribute{boolAttr(ck.CKA_TOKEN, true)},
		})
		if err != nil {
			t.Fatalf("generate %v: %v", m, err)
		}
		return r
	}

	dsa := gen(ck.CKM_ML_DSA_KEY_PAIR_GEN, ck.CKP_ML_DSA_87)
	m := &hsmv1.Mechanism{Type: uint64(ck.CKM_ML_DSA), Context: []byte("ctx"), Hedge: uint64(ck.CKH_DETERMINISTIC_REQUIRED)}
	sig, err := cb.Sign(ctx, &hsmv1.CryptRequest{Session: sb, Key: dsa.GetPrivateKey(), Mechanism: m, Data: []byte("m")})
	if err != nil {
		t.Fatalf("sign on node 2: %v", err)
	}
	again, err := ca.Sign(ctx, &hsmv1.CryptRequest{Session: sa, Key: dsa.GetPrivateKey(), Mechanism: m, Data: []byte("m")})
	if err != nil || !bytes.Equal(again.GetData(), sig.GetData()) {
		t.Fatalf("deterministic signature on node 1 differs from node 2's (%v)", err)
	}
	if _, err := ca.Verify(ctx, &hsmv1.VerifyRequest{Session: sa, Key: dsa.GetPublicKey(), Mechanism: m, Data: []byte("m"), Signature: sig.GetData()}); err != nil {
		t.Fatalf("verify on node 1: %v", err)
	}
	other := &hsmv1.Mechanism{Type: uint64(ck.CKM_ML_DSA), Context: []byte("other")}
	_, err = ca.Verify(ctx, &hsmv1.VerifyRequest{Session: sa, Key: dsa.GetPublicKey(), Mechanism: other, Data: []byte("m"), Signature: sig.GetData()})
	wantErr(t, err, codes.FailedPrecondition, "CKR_SIGNATURE_INVALID")

	kem := gen(ck.CKM_ML_KEM_KEY_PAIR_GEN, ck.CKP_ML_KEM_1024)
	secretT := []*hsmv1.Attribute{boolAttr(ck.CKA_TOKEN, true), boolAttr(ck.CKA_SENSITIVE, false)}
	enc, err := ca.EncapsulateKey(ctx, &hsmv1.EncapsulateKeyRequest{
		Session: sa, PublicKey: kem.GetPublicKey(), Mechanism: mechOf(ck.CKM_ML_KEM), Template: secretT, MinNodes: 2})
	if err != nil {
		t.Fatalf("encapsulate on node 1: %v", err)
	}
	if len(enc.GetCiphertext()) != 1568 || len(enc.GetStoredOn()) != 2 {
		t.Fatalf("encapsulate: %d-byte ciphertext, stored on %v", len(enc.GetCiphertext()), enc.GetStoredOn())
	}
	dec, err := cb.DecapsulateKey(ctx, &hsmv1.DecapsulateKeyRequest{
		Session: sb, PrivateKey: kem.GetPrivateKey(), Mechanism: mechOf(ck.CKM_ML_KEM), Ciphertext: enc.GetCiphertext(), Template: secretT})
	if err != nil {
		t.Fatalf("decapsulate on node 2: %v", err)
	}
	value := func(c hsmv1.HSMClient, s, id uint64) []byte {
		t.Helper()
		r, err := c.GetAttributes(ctx, &hsmv1.GetAttributesRequest{Session: s, Object: id, Types: []uint64{uint64(ck.CKA_VALUE)}})
		if err != nil {
			t.Fatalf("CKA_VALUE: %v", err)
		}
		return r.GetValues()[0].GetValue()
	}
	// The encapsulated key itself reached node 2 (min_nodes 2).
	s1, s2 := value(cb, sb, enc.GetObject()), value(cb, sb, dec.GetObject())
	if len(s1) != 32 || !bytes.Equal(s1, s2) {
		t.Fatalf("shared secrets %x / %x", s1, s2)
	}
}
