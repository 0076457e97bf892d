package client

import (
	"context"
	"fmt"
	"sync"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Client mutual TLS: the trust anchors (CA certificates) whose client
// certificates the cluster accepts, and the enforcement level ("none" or
// "cluster"). They are cluster settings, the same on every HSM once
// synchronized. The client certificate a Cluster presents comes from its
// Config.TLS (File.ClientCert).

// TrustAnchor is a CA certificate registered for client mTLS.
type TrustAnchor struct {
	Reference   uint32 // shown as 0x01; never reused
	Certificate []byte // DER
}

// HSMTrustAnchors is one HSM's answer to Cluster.TrustAnchors: its
// anchors, or why it did not answer.
type HSMTrustAnchors struct {
	Address string
	Anchors []TrustAnchor
	Err     error
}

func fromTrustAnchors(as []*hsmv1.TrustAnchor) []TrustAnchor {
	out := make([]TrustAnchor, len(as))
	for i, a := range as {
		out[i] = TrustAnchor{Reference: a.GetReference(), Certificate: a.GetCertificate()}
	}
	return out
}

// TrustAnchors asks every HSM for its trust anchors, at once; it needs no
// login. Comparing the answers tells whether an anchor covers the whole
// cluster.
func (c *Cluster) TrustAnchors(ctx context.Context) []HSMTrustAnchors {
	members := c.live()
	out := make([]HSMTrustAnchors, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			out[i].Address = m.addr
			rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
			defer cancel()
			r, err := m.rpc.ListTrustAnchors(rctx, &hsmv1.Empty{})
			if err != nil {
				if e := refusal(m.addr, err); e != nil {
					err = e
				}
				out[i].Err = fmt.Errorf("client: trust anchors of HSM %s: %w", m.addr, err)
				return
			}
			out[i].Anchors = fromTrustAnchors(r.GetAnchors())
		})
	}
	wg.Wait()
	return out
}

// RegisterTrustAnchor registers a CA certificate (DER) for client mTLS;
// admins only, with approvals when the quorum-management quorum value is
// above 1.
func (s *Session) RegisterTrustAnchor(ctx context.Context, certDER []byte, approvals *Approvals) (TrustAnchor, error) {
	cl, err := s.approved(ctx, "register trust anchor", approvals)
	if err != nil {
		return TrustAnchor{}, err
	}
	var r *hsmv1.TrustAnchor
	err = s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) (err error) {
		r, err = m.rpc.RegisterTrustAnchor(ctx, &hsmv1.RegisterTrustAnchorRequest{Session: sid, Certificate: certDER,
			Approvals: wireApprovals(approvals)})
		return err
	})
	if err != nil {
		return TrustAnchor{}, err
	}
	return TrustAnchor{Reference: r.GetReference(), Certificate: r.GetCertificate()}, nil
}

// DeregisterTrustAnchor removes the trust anchor reference, or every one
// with all, and returns what it removed.
func (s *Session) DeregisterTrustAnchor(ctx context.Context, reference uint32, all bool, approvals *Approvals) ([]TrustAnchor, error) {
	cl, err := s.approved(ctx, "deregister trust anchor", approvals)
	if err != nil {
		return nil, err
	}
	var r *hsmv1.ListTrustAnchorsResponse
	err = s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) (err error) {
		r, err = m.rpc.DeregisterTrustAnchor(ctx, &hsmv1.DeregisterTrustAnchorRequest{Session: sid, Reference: reference,
			All: all, Approvals: wireApprovals(approvals)})
		return err
	})
	if err != nil {
		return nil, err
	}
	return fromTrustAnchors(r.GetAnchors()), nil
}

// SetMTLSEnforcement sets the enforcement level, "none" or "cluster". The
// HSMs accept "cluster" only from a connection that presents a client
// certificate issued by a registered trust anchor.
func (s *Session) SetMTLSEnforcement(ctx context.Context, level string, approvals *Approvals) error {
	cl, err := s.approved(ctx, "set mTLS enforcement", approvals)
	if err != nil {
		return err
	}
	return s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.SetMTLSEnforcement(ctx, &hsmv1.SetMTLSEnforcementRequest{Session: sid, Level: level,
			Approvals: wireApprovals(approvals)})
		return err
	})
}

// MTLSEnforcement returns the enforcement level ("none" or "cluster").
func (s *Session) MTLSEnforcement(ctx context.Context) (string, error) {
	var r *hsmv1.MTLSEnforcementResponse
	err := s.empty(ctx, call{op: "get mTLS enforcement", retry: true}, func(ctx context.Context, m *member, sid uint64) (err error) {
		r, err = m.rpc.GetMTLSEnforcement(ctx, &hsmv1.SessionRequest{Session: sid})
		return err
	})
	if err != nil {
		return "", err
	}
	return r.GetLevel(), nil
}
