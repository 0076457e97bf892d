package node

import (
	"context"

	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// EncapsulateKey and DecapsulateKey are creations (see create): the new
// secret key is the shared secret of PKCS#11 v3.2's C_EncapsulateKey and
// C_DecapsulateKey.

func (s *hsmServer) EncapsulateKey(ctx context.Context, req *hsmv1.EncapsulateKeyRequest) (*hsmv1.EncapsulateKeyResponse, error) {
	var ciphertext []byte
	ids, storedOn, err := s.create(ctx, req.GetSession(), req.GetMinNodes(), req.GetIdempotency(), func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error) {
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		id, ct, err := dev.EncapsulateKey(ctx, cs.dev, hsm.ObjectID(req.GetPublicKey()), m, t)
		ciphertext = ct
		return single(id, err)
	})
	if err != nil {
		return nil, err
	}
	return &hsmv1.EncapsulateKeyResponse{Object: uint64(ids[0]), StoredOn: storedOn, Ciphertext: ciphertext}, nil
}

func (s *hsmServer) DecapsulateKey(ctx context.Context, req *hsmv1.DecapsulateKeyRequest) (*hsmv1.CreateResponse, error) {
	return createResponse(s.create(ctx, req.GetSession(), req.GetMinNodes(), req.GetIdempotency(), func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error) {
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		if err := data("ciphertext", req.GetCiphertext()); err != nil {
			return nil, err
		}
		return single(dev.DecapsulateKey(ctx, cs.dev, hsm.ObjectID(req.GetPrivateKey()), m, req.GetCiphertext(), t))
	}))
}
