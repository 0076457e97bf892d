package client

import (
	"context"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// EncapsulateKey encapsulates a fresh shared secret to publicKey (PKCS#11
// v3.2 C_EncapsulateKey, CKM_ML_KEM) and makes it a secret key from tmpl.
// It returns the key and the ciphertext for the holder of the private key.
// Like every creation of token objects it may be resent to another HSM
// after a transport failure; the key and ciphertext are then the last
// send's.
func (s *Session) EncapsulateKey(ctx context.Context, publicKey ObjectID, mech Mechanism, tmpl []Attribute, opts ...CreateOption) (ObjectID, []byte, error) {
	var ciphertext []byte
	ids, err := s.create(ctx, "encapsulate key", []bool{isToken(tmpl)}, []ObjectID{publicKey}, opts,
		func(ctx context.Context, m *member, sid uint64, n uint32, idem *hsmv1.Idempotency) (created, error) {
			r, err := m.rpc.EncapsulateKey(ctx, &hsmv1.EncapsulateKeyRequest{
				Session: sid, PublicKey: uint64(publicKey), Mechanism: mech.wire(), Template: wireTemplate(tmpl),
				MinNodes: n, Idempotency: idem})
			if err != nil {
				return created{}, err
			}
			ciphertext = r.GetCiphertext()
			return created{ids: []ObjectID{ObjectID(r.GetObject())}, storedOn: r.GetStoredOn()}, nil
		})
	if err != nil {
		return 0, nil, err
	}
	return ids[0], ciphertext, nil
}

// DecapsulateKey recovers the shared secret of ciphertext with privateKey
// (PKCS#11 v3.2 C_DecapsulateKey, CKM_ML_KEM) as a secret key from tmpl.
func (s *Session) DecapsulateKey(ctx context.Context, privateKey ObjectID, mech Mechanism, ciphertext []byte, tmpl []Attribute, opts ...CreateOption) (ObjectID, error) {
	ids, err := s.create(ctx, "decapsulate key", []bool{isToken(tmpl)}, []ObjectID{privateKey}, opts,
		func(ctx context.Context, m *member, sid uint64, n uint32, idem *hsmv1.Idempotency) (created, error) {
			return createResponse(m.rpc.DecapsulateKey(ctx, &hsmv1.DecapsulateKeyRequest{
				Session: sid, PrivateKey: uint64(privateKey), Mechanism: mech.wire(), Ciphertext: ciphertext,
				Template: wireTemplate(tmpl), MinNodes: n, Idempotency: idem}))
		})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}
