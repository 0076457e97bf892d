package node

import (
	"context"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// This file: cryptography, single-part and multi-part, wrapping and random.

// maxRandom is the most random bytes one call returns (the device's limit).
const maxRandom = 1 << 20

// crypt runs a single-part operation on a key.
func (s *hsmServer) crypt(req *hsmv1.CryptRequest,
	op func(dev *hsm.Device, sid hsm.SessionID, key hsm.ObjectID, m hsm.Mechanism, data []byte) ([]byte, error)) (*hsmv1.BytesResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.BytesResponse, error) {
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		if err := data("data", req.GetData()); err != nil {
			return nil, err
		}
		return bytesResponse(op(dev, cs.dev, hsm.ObjectID(req.GetKey()), m, req.GetData()))
	})
}

func (s *hsmServer) Encrypt(_ context.Context, req *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	var iv []byte
	r, err := s.crypt(req, func(dev *hsm.Device, sid hsm.SessionID, key hsm.ObjectID, m hsm.Mechanism, data []byte) (out []byte, err error) {
		out, iv, err = dev.EncryptIV(sid, key, m, data)
		return out, err
	})
	if err != nil {
		return nil, err
	}
	r.Iv = iv
	return r, nil
}

func (s *hsmServer) Decrypt(_ context.Context, req *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	return s.crypt(req, (*hsm.Device).Decrypt)
}

func (s *hsmServer) Sign(_ context.Context, req *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	return s.crypt(req, (*hsm.Device).Sign)
}

func (s *hsmServer) Digest(_ context.Context, req *hsmv1.CryptRequest) (*hsmv1.BytesResponse, error) {
	return s.crypt(req, func(dev *hsm.Device, sid hsm.SessionID, _ hsm.ObjectID, m hsm.Mechanism, data []byte) ([]byte, error) {
		return dev.Digest(sid, m, data)
	})
}

func (s *hsmServer) Verify(_ context.Context, req *hsmv1.VerifyRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		if err := firstErr(data("data", req.GetData()), data("signature", req.GetSignature())); err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.Verify(cs.dev, hsm.ObjectID(req.GetKey()), m, req.GetData(), req.GetSignature())
	})
}

// Batch serves a Batch stream: each call runs as its unary RPC would,
// through the server's interceptors (internal/batch).
func (s *hsmServer) Batch(st hsmv1.HSM_BatchServer) error {
	if s.batch == nil {
		return s.UnimplementedHSMServer.Batch(st)
	}
	return s.batch.Serve(st)
}

func (s *hsmServer) WrapKey(_ context.Context, req *hsmv1.WrapKeyRequest) (*hsmv1.BytesResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.BytesResponse, error) {
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		out, iv, err := dev.WrapKeyIV(cs.dev, hsm.ObjectID(req.GetWrappingKey()), m, hsm.ObjectID(req.GetKey()))
		if err != nil {
			return nil, err
		}
		return &hsmv1.BytesResponse{Data: out, Iv: iv}, nil
	})
}

func (s *hsmServer) GenerateRandom(_ context.Context, req *hsmv1.RandomRequest) (*hsmv1.BytesResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.BytesResponse, error) {
		if req.GetLength() > maxRandom {
			return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "%d random bytes exceed %d per call", req.GetLength(), maxRandom)
		}
		return bytesResponse(dev.GenerateRandom(cs.dev, int(req.GetLength())))
	})
}

func (s *hsmServer) Begin(_ context.Context, req *hsmv1.BeginRequest) (*hsmv1.BeginResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.BeginResponse, error) {
		fn, err := function(req.GetFunction())
		if err != nil {
			return nil, err
		}
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		op, err := dev.Begin(cs.dev, fn, hsm.ObjectID(req.GetKey()), m)
		if err != nil {
			return nil, err
		}
		return &hsmv1.BeginResponse{Operation: uint64(op)}, nil
	})
}

func (s *hsmServer) Update(_ context.Context, req *hsmv1.UpdateRequest) (*hsmv1.BytesResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.BytesResponse, error) {
		if err := data("data", req.GetData()); err != nil {
			return nil, err
		}
		return bytesResponse(dev.Update(cs.dev, hsm.OpID(req.GetOperation()), req.GetData()))
	})
}

func (s *hsmServer) Finish(_ context.Context, req *hsmv1.FinishRequest) (*hsmv1.BytesResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.BytesResponse, error) {
		if err := data("signature", req.GetSignature()); err != nil {
			return nil, err
		}
		out, iv, err := dev.FinishIV(cs.dev, hsm.OpID(req.GetOperation()), req.GetSignature())
		if err != nil {
			return nil, err
		}
		return &hsmv1.BytesResponse{Data: out, Iv: iv}, nil
	})
}

func (s *hsmServer) Abort(_ context.Context, req *hsmv1.OperationRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		return &hsmv1.Empty{}, dev.Abort(cs.dev, hsm.OpID(req.GetOperation()))
	})
}
