package node

import (
	"context"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// This file: client mTLS settings (the trust anchors for client
// certificates and the enforcement level). Enforcement itself is in
// clienttls.go.

// maxAnchorWire bounds a trust anchor in a request; the device's own bound
// is smaller.
const maxAnchorWire = 64 << 10

func wireAnchor(a hsm.TrustAnchor) *hsmv1.TrustAnchor {
	return &hsmv1.TrustAnchor{Reference: a.Ref, Certificate: a.Certificate.Raw}
}

func wireAnchors(as []hsm.TrustAnchor) *hsmv1.ListTrustAnchorsResponse {
	resp := &hsmv1.ListTrustAnchorsResponse{Anchors: make([]*hsmv1.TrustAnchor, 0, len(as))}
	for _, a := range as {
		resp.Anchors = append(resp.Anchors, wireAnchor(a))
	}
	return resp
}

func (s *hsmServer) RegisterTrustAnchor(ctx context.Context, req *hsmv1.RegisterTrustAnchorRequest) (*hsmv1.TrustAnchor, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.TrustAnchor, error) {
		if len(req.GetCertificate()) > maxAnchorWire {
			return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "certificate of %d bytes is too long", len(req.GetCertificate()))
		}
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		a, err := dev.RegisterTrustAnchor(ctx, cs.dev, req.GetCertificate(), ap)
		if err != nil {
			return nil, err
		}
		return wireAnchor(a), nil
	})
}

// ListTrustAnchors needs no session: anyone may list the anchors.
func (s *hsmServer) ListTrustAnchors(context.Context, *hsmv1.Empty) (*hsmv1.ListTrustAnchorsResponse, error) {
	dev := s.n.dev.Load()
	if dev == nil {
		return nil, errNotReady()
	}
	return wireAnchors(dev.TrustAnchors()), nil
}

func (s *hsmServer) DeregisterTrustAnchor(ctx context.Context, req *hsmv1.DeregisterTrustAnchorRequest) (*hsmv1.ListTrustAnchorsResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.ListTrustAnchorsResponse, error) {
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		removed, err := dev.DeregisterTrustAnchor(ctx, cs.dev, req.GetReference(), req.GetAll(), ap)
		if err != nil {
			return nil, err
		}
		return wireAnchors(removed), nil
	})
}

// SetMTLSEnforcement hands the device the certificate chain this
// connection presented: level "cluster" needs one the device accepts.
func (s *hsmServer) SetMTLSEnforcement(ctx context.Context, req *hsmv1.SetMTLSEnforcementRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		level, err := hsm.ParseMTLSLevel(req.GetLevel())
		if err != nil {
			return nil, err
		}
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.SetMTLSEnforcement(ctx, cs.dev, level, clientChain(ctx), ap)
	})
}

func (s *hsmServer) GetMTLSEnforcement(_ context.Context, req *hsmv1.SessionRequest) (*hsmv1.MTLSEnforcementResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.MTLSEnforcementResponse, error) {
		level, err := dev.MTLSEnforcement(cs.dev)
		if err != nil {
			return nil, err
		}
		return &hsmv1.MTLSEnforcementResponse{Level: level.String()}, nil
	})
}
