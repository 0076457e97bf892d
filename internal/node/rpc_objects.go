package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
	"github.com/coffer-hsm/coffer/proto/hsmv1/reason"
)

// This file: object creation (with client-side synchronization), search,
// attributes, sharing, export and destruction.

// removeTimeout bounds the removal of a key too few HSMs stored, which runs
// even if the caller has gone.
const removeTimeout = 10 * time.Second

// create runs one creation: it checks min_nodes against the cluster's size,
// calls build, then settles what was made (see created). With idem, the
// call may be a resend of one another node did not answer: the token fixes
// the new token objects' ids, and what an earlier send made here loses to
// them (hsm.Device.SettleCreation).
func (s *hsmServer) create(ctx context.Context, handle uint64, minNodes uint32, idem *hsmv1.Idempotency,
	build func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error)) ([]hsm.ObjectID, []uint32, error) {
	type result struct {
		ids      []hsm.ObjectID
		storedOn []uint32
	}
	if idem != nil {
		c := hsm.Creation{Token: idem.GetToken(), Attempt: idem.GetAttempt()}
		if err := c.Validate(); err != nil {
			return nil, nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "%v", err)
		}
		ctx = hsm.WithCreation(ctx, c)
	}
	r, err := inSession(s, handle, func(dev *hsm.Device, cs *clientSession) (result, error) {
		if cluster := 1 + len(s.n.peers); int(minNodes) > cluster {
			return result{}, refusal(ck.CKR_FUNCTION_FAILED, "min_nodes %d exceeds the %d HSMs of the cluster", minNodes, cluster)
		}
		ids, err := build(ctx, dev, cs)
		if err != nil {
			return result{}, err
		}
		if idem != nil {
			if err := dev.SettleCreation(ctx, ids[0]); err != nil {
				s.n.log.Warn("could not settle a resent creation", "object", ids[0], "err", err)
			}
		}
		storedOn, err := s.created(ctx, dev, cs, minNodes, ids)
		return result{ids, storedOn}, err
	})
	return r.ids, r.storedOn, err
}

// created settles new objects: session objects are counted against their
// session; token objects are pushed to peers when min_nodes > 1, and removed
// again (as the same session) if fewer than min_nodes HSMs, this one
// included, stored all of them. It returns the ids of the nodes known to
// hold the objects, this node first.
func (s *hsmServer) created(ctx context.Context, dev *hsm.Device, cs *clientSession, minNodes uint32, ids []hsm.ObjectID) ([]uint32, error) {
	var tokens, sessionObjs []hsm.ObjectID
	for _, id := range ids {
		info, err := dev.Info(cs.dev, id)
		if err != nil {
			return nil, err
		}
		if info.Token {
			tokens = append(tokens, id)
		} else {
			sessionObjs = append(sessionObjs, id)
		}
	}
	s.n.sessions.addObjects(cs, sessionObjs...)
	storedOn := []uint32{s.n.cfg.NodeID}
	if minNodes <= 1 || len(tokens) == 0 {
		return storedOn, nil
	}
	need := int(minNodes) - 1
	peers := s.n.replicate(ctx, tokens, need)
	if len(peers) >= need {
		return append(storedOn, peers...), nil
	}
	msg := fmt.Sprintf("key stored on %d of %d required HSMs; it was removed", 1+len(peers), minNodes)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	for _, id := range ids {
		if err := dev.DestroyObject(rctx, cs.dev, id); err != nil {
			s.n.log.Error("could not remove a key too few HSMs stored", "object", id, "err", err)
			msg = fmt.Sprintf("key stored on %d of %d required HSMs; removing it failed: %v", 1+len(peers), minNodes, err)
			continue
		}
		s.n.sessions.dropObject(cs, id)
	}
	return nil, rvStatus(codes.FailedPrecondition, ck.CKR_FUNCTION_FAILED, reason.MinNodesNotMet, msg, nil)
}

// replicate pushes token objects to peers now and returns the peers that
// stored every one of them, once need of them did (or time is up).
func (n *Node) replicate(ctx context.Context, ids []hsm.ObjectID, need int) []uint32 {
	sy := n.syncer.Load()
	if sy == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReplicateTimeout)
	defer cancel()
	var common []uint32
	for i, id := range ids {
		got, err := sy.Replicate(ctx, peersync.Key{Kind: store.KindObject, ID: id.String()}, need)
		if err != nil {
			n.log.Warn("replication of a new key incomplete", "object", id, "stored_on", got, "err", err)
		}
		got = slices.Clone(got)
		slices.Sort(got)
		if i == 0 {
			common = got
			continue
		}
		common = slices.DeleteFunc(common, func(p uint32) bool { _, ok := slices.BinarySearch(got, p); return !ok })
	}
	return slices.Compact(common)
}

func single(id hsm.ObjectID, err error) ([]hsm.ObjectID, error) {
	if err != nil {
		return nil, err
	}
	return []hsm.ObjectID{id}, nil
}

func createResponse(ids []hsm.ObjectID, storedOn []uint32, err error) (*hsmv1.CreateResponse, error) {
	if err != nil {
		return nil, err
	}
	return &hsmv1.CreateResponse{Object: uint64(ids[0]), StoredOn: storedOn}, nil
}

func (s *hsmServer) GenerateKey(ctx context.Context, req *hsmv1.GenerateKeyRequest) (*hsmv1.CreateResponse, error) {
	return createResponse(s.create(ctx, req.GetSession(), req.GetMinNodes(), req.GetIdempotency(), func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error) {
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		return single(dev.GenerateKey(ctx, cs.dev, m, t))
	}))
}

func (s *hsmServer) GenerateKeyPair(ctx context.Context, req *hsmv1.GenerateKeyPairRequest) (*hsmv1.GenerateKeyPairResponse, error) {
	ids, storedOn, err := s.create(ctx, req.GetSession(), req.GetMinNodes(), req.GetIdempotency(), func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error) {
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		pt, err := template(req.GetPublicTemplate())
		if err != nil {
			return nil, err
		}
		st, err := template(req.GetPrivateTemplate())
		if err != nil {
			return nil, err
		}
		pub, priv, err := dev.GenerateKeyPair(ctx, cs.dev, m, pt, st)
		if err != nil {
			return nil, err
		}
		return []hsm.ObjectID{pub, priv}, nil
	})
	if err != nil {
		return nil, err
	}
	return &hsmv1.GenerateKeyPairResponse{PublicKey: uint64(ids[0]), PrivateKey: uint64(ids[1]), StoredOn: storedOn}, nil
}

func (s *hsmServer) CreateObject(ctx context.Context, req *hsmv1.CreateObjectRequest) (*hsmv1.CreateResponse, error) {
	return createResponse(s.create(ctx, req.GetSession(), req.GetMinNodes(), req.GetIdempotency(), func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error) {
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		return single(dev.CreateObject(ctx, cs.dev, t))
	}))
}

// CopyObject is C_CopyObject, a creation like CreateObject: a token copy
// is replicated and settled as any new token object.
func (s *hsmServer) CopyObject(ctx context.Context, req *hsmv1.CopyObjectRequest) (*hsmv1.CreateResponse, error) {
	return createResponse(s.create(ctx, req.GetSession(), req.GetMinNodes(), req.GetIdempotency(), func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error) {
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		return single(dev.CopyObject(ctx, cs.dev, hsm.ObjectID(req.GetObject()), t))
	}))
}

func (s *hsmServer) ImportKey(ctx context.Context, req *hsmv1.ImportKeyRequest) (*hsmv1.CreateResponse, error) {
	return createResponse(s.create(ctx, req.GetSession(), req.GetMinNodes(), req.GetIdempotency(), func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error) {
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		switch k := req.GetKey().(type) {
		case *hsmv1.ImportKeyRequest_Pkcs8:
			if err := data("PKCS #8 key", k.Pkcs8); err != nil {
				return nil, err
			}
			return single(dev.ImportPrivateKey(ctx, cs.dev, k.Pkcs8, t))
		case *hsmv1.ImportKeyRequest_Spki:
			if err := data("public key", k.Spki); err != nil {
				return nil, err
			}
			return single(dev.ImportPublicKey(ctx, cs.dev, k.Spki, t))
		}
		return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "a PKCS #8 or SPKI key is required")
	}))
}

func (s *hsmServer) UnwrapKey(ctx context.Context, req *hsmv1.UnwrapKeyRequest) (*hsmv1.CreateResponse, error) {
	return createResponse(s.create(ctx, req.GetSession(), req.GetMinNodes(), req.GetIdempotency(), func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error) {
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		if err := data("wrapped key", req.GetWrapped()); err != nil {
			return nil, err
		}
		return single(dev.UnwrapKey(ctx, cs.dev, hsm.ObjectID(req.GetUnwrappingKey()), m, req.GetWrapped(), t))
	}))
}

func (s *hsmServer) DeriveKey(ctx context.Context, req *hsmv1.DeriveKeyRequest) (*hsmv1.CreateResponse, error) {
	return createResponse(s.create(ctx, req.GetSession(), req.GetMinNodes(), req.GetIdempotency(), func(ctx context.Context, dev *hsm.Device, cs *clientSession) ([]hsm.ObjectID, error) {
		m, err := mechanism(req.GetMechanism())
		if err != nil {
			return nil, err
		}
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		return single(dev.DeriveKey(ctx, cs.dev, hsm.ObjectID(req.GetBaseKey()), m, t))
	}))
}

func (s *hsmServer) FindObjects(_ context.Context, req *hsmv1.FindObjectsRequest) (*hsmv1.FindObjectsResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.FindObjectsResponse, error) {
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		ids, err := dev.FindObjects(cs.dev, t)
		if err != nil {
			return nil, err
		}
		resp := &hsmv1.FindObjectsResponse{Objects: make([]uint64, len(ids))}
		for i, id := range ids {
			resp.Objects[i] = uint64(id)
		}
		return resp, nil
	})
}

func (s *hsmServer) ObjectInfo(_ context.Context, req *hsmv1.ObjectRequest) (*hsmv1.ObjectInfoResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.ObjectInfoResponse, error) {
		info, err := dev.Info(cs.dev, hsm.ObjectID(req.GetObject()))
		if err != nil {
			return nil, err
		}
		return &hsmv1.ObjectInfoResponse{
			Object: uint64(info.ID), Class: uint64(info.Class), KeyType: uint64(info.KeyType), Label: info.Label,
			Token: info.Token, Owner: info.Owner, SharedWith: info.SharedWith,
		}, nil
	})
}

// GetAttributes answers every requested type, as C_GetAttributeValue does:
// a type without a value carries the reason in its rv, and the call itself
// succeeds. Only a refusal of the whole call (no session, no such object) is
// an error status.
func (s *hsmServer) GetAttributes(_ context.Context, req *hsmv1.GetAttributesRequest) (*hsmv1.GetAttributesResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.GetAttributesResponse, error) {
		if len(req.GetTypes()) > maxTypes {
			return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "%d attribute types exceed %d", len(req.GetTypes()), maxTypes)
		}
		types := make([]ck.AttributeType, len(req.GetTypes()))
		for i, t := range req.GetTypes() {
			types[i] = ck.AttributeType(t)
		}
		vals, err := dev.GetAttributes(cs.dev, hsm.ObjectID(req.GetObject()), types)
		if vals == nil && err != nil {
			return nil, err
		}
		resp := &hsmv1.GetAttributesResponse{Values: make([]*hsmv1.AttributeValue, len(vals))}
		for i, v := range vals {
			resp.Values[i] = &hsmv1.AttributeValue{Type: uint64(v.Type), Value: v.Value, Rv: uint64(hsm.Code(v.Err))}
		}
		return resp, nil
	})
}

func (s *hsmServer) SetAttributes(ctx context.Context, req *hsmv1.SetAttributesRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		t, err := template(req.GetTemplate())
		if err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.SetAttributes(ctx, cs.dev, hsm.ObjectID(req.GetObject()), t)
	})
}

func (s *hsmServer) DestroyObject(ctx context.Context, req *hsmv1.ObjectRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		id := hsm.ObjectID(req.GetObject())
		if err := dev.DestroyObject(ctx, cs.dev, id); err != nil {
			return nil, err
		}
		s.n.sessions.dropObject(cs, id)
		return &hsmv1.Empty{}, nil
	})
}

func (s *hsmServer) ShareKey(ctx context.Context, req *hsmv1.ShareKeyRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		if err := name("username", req.GetUsername()); err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.ShareKey(ctx, cs.dev, hsm.ObjectID(req.GetObject()), req.GetUsername())
	})
}

func (s *hsmServer) UnshareKey(ctx context.Context, req *hsmv1.ShareKeyRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		if err := name("username", req.GetUsername()); err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.UnshareKey(ctx, cs.dev, hsm.ObjectID(req.GetObject()), req.GetUsername())
	})
}

func (s *hsmServer) ExportKey(ctx context.Context, req *hsmv1.ObjectRequest) (*hsmv1.BytesResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.BytesResponse, error) {
		return bytesResponse(dev.ExportKey(ctx, cs.dev, hsm.ObjectID(req.GetObject())))
	})
}

func (s *hsmServer) ExportPublicKey(_ context.Context, req *hsmv1.ObjectRequest) (*hsmv1.BytesResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.BytesResponse, error) {
		return bytesResponse(dev.ExportPublicKey(cs.dev, hsm.ObjectID(req.GetObject())))
	})
}

func bytesResponse(b []byte, err error) (*hsmv1.BytesResponse, error) {
	if err != nil {
		return nil, err
	}
	return &hsmv1.BytesResponse{Data: b}, nil
}
