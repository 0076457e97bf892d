package node

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// This file: the clone's side of replication links, and the link settings
// over the HSM service.
//
// A node of a linked source cluster connects with its node certificate.
// The handshake admits it only if the certificate is a node certificate of
// a cluster this cluster holds an inbound link from, chaining to that
// link's anchor (Config.VerifyLinkedNode); every ReplicationLink RPC checks
// it again and finds the link. Such a connection is no peer (Peer RPCs
// check for this cluster's node certificates) and no mTLS client (HSM RPCs
// under enforcement check the client anchors). The link admits token
// objects, and users if this side's link says so; never settings. Every
// record is opened under this cluster's masking key (a cluster with another
// one is "not a clone") and admitted by the device (hsm.AdmitLinked: the
// rule every record from a clone meets, key replicate's included), which
// checks it and stores it in one critical section; onApply follows, as for
// a peer's record, and this cluster's own sync spreads it.

// inboundLinkFor returns the inbound link whose cluster chain is a node
// certificate of.
func (n *Node) inboundLinkFor(chain []*x509.Certificate) (hsm.ReplicationLink, bool) {
	dev := n.dev.Load()
	if dev == nil || n.cfg.VerifyLinkedNode == nil || len(chain) == 0 {
		return hsm.ReplicationLink{}, false
	}
	for _, l := range dev.ReplicationLinks() {
		if l.Direction == hsm.LinkInbound && n.cfg.VerifyLinkedNode(chain, l.Anchor, l.ClusterID) == nil {
			return l, true
		}
	}
	return hsm.ReplicationLink{}, false
}

// linkServer serves ReplicationLink to nodes of linked source clusters.
type linkServer struct {
	hsmv1.UnimplementedReplicationLinkServer
	n *Node
}

// authorize finds the inbound link of the caller and checks the kinds it
// names are ones the link admits.
func (s *linkServer) authorize(ctx context.Context, kinds []uint32) (hsm.ReplicationLink, []store.Kind, error) {
	l, ok := s.n.inboundLinkFor(clientChain(ctx))
	if !ok {
		return l, nil, status.Errorf(codes.PermissionDenied, "not a node of a cluster that cluster %s accepts replication from", s.n.cfg.ClusterID)
	}
	admitted := linkKinds(l)
	var out []store.Kind
	for _, k := range kinds {
		if k > 255 || !slices.Contains(admitted, store.Kind(k)) {
			err := fmt.Errorf("%w: cluster %s admits %v from %s", peersync.ErrKindNotLinked, s.n.cfg.ClusterID, admitted, l.ClusterID)
			s.n.links.update(l.Key(), func(st *linkStatus) { st.state, st.err = linkRefused, err.Error() })
			return l, nil, status.Errorf(codes.PermissionDenied, "%v", err)
		}
		if !slices.Contains(out, store.Kind(k)) {
			out = append(out, store.Kind(k))
		}
	}
	if len(out) == 0 {
		return l, nil, status.Error(codes.InvalidArgument, "no record kinds named")
	}
	return l, out, nil
}

func (s *linkServer) syncer() (*peersync.Syncer, error) {
	sy := s.n.syncer.Load()
	if sy == nil || !sy.Ready() {
		return nil, status.Error(codes.Unavailable, "node is not synchronized with its cluster yet")
	}
	return sy, nil
}

// heard records that the link's source was admitted just now.
func (s *linkServer) heard(l hsm.ReplicationLink, applied int, err error) {
	now := s.n.cfg.Now()
	s.n.links.update(l.Key(), func(st *linkStatus) {
		st.lastSync = now
		st.records += uint64(applied)
		switch {
		case err == nil:
			st.state, st.err = linkReceiving, ""
		case errors.Is(err, store.ErrBadBox), errors.Is(err, errNotAClone):
			st.state, st.err = linkNotAClone, err.Error()
		default:
			st.state, st.err = linkRefused, err.Error()
		}
	})
}

func (s *linkServer) Hello(ctx context.Context, req *hsmv1.LinkHelloRequest) (*hsmv1.LinkHelloResponse, error) {
	l, _, err := s.authorize(ctx, req.GetKinds())
	if err != nil {
		return nil, err
	}
	check, err := s.n.store.MaskingKeyCheck()
	if err != nil {
		return nil, peerStatus(err)
	}
	if req.GetClusterId() != l.ClusterID {
		return nil, status.Errorf(codes.PermissionDenied, "request says cluster %q, certificate says %q", req.GetClusterId(), l.ClusterID)
	}
	if !bytes.Equal(req.GetMkCheck(), check) {
		s.heard(l, 0, errNotAClone)
		s.n.log.Warn("replication link refused: not a clone", "from", l.ClusterID)
		return nil, status.Errorf(codes.FailedPrecondition, "cluster %s: %v", s.n.cfg.ClusterID, errNotAClone)
	}
	s.heard(l, 0, nil)
	return &hsmv1.LinkHelloResponse{ClusterId: s.n.cfg.ClusterID, MkCheck: check, Kinds: kindsToWire(linkKinds(l))}, nil
}

func (s *linkServer) Digest(ctx context.Context, req *hsmv1.LinkDigestRequest) (*hsmv1.DigestResponse, error) {
	_, kinds, err := s.authorize(ctx, req.GetKinds())
	if err != nil {
		return nil, err
	}
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	if err := checkBuckets(req.GetBuckets()); err != nil {
		return nil, err
	}
	d, err := sy.HandleLinkDigest(ctx, int(req.GetBuckets()), kinds)
	if err != nil {
		return nil, peerStatus(err)
	}
	return &hsmv1.DigestResponse{Buckets: d}, nil
}

func (s *linkServer) Versions(ctx context.Context, req *hsmv1.LinkVersionsRequest) (*hsmv1.VersionsResponse, error) {
	_, kinds, err := s.authorize(ctx, req.GetKinds())
	if err != nil {
		return nil, err
	}
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	which, err := checkBucketList(req.GetBuckets(), req.GetBucket())
	if err != nil {
		return nil, err
	}
	metas, err := sy.HandleLinkVersions(ctx, int(req.GetBuckets()), which, kinds)
	if err != nil {
		return nil, peerStatus(err)
	}
	resp := &hsmv1.VersionsResponse{Records: make([]*hsmv1.RecordMeta, 0, len(metas))}
	for _, m := range metas {
		resp.Records = append(resp.Records, metaToWire(m))
	}
	return resp, nil
}

func (s *linkServer) Push(ctx context.Context, req *hsmv1.LinkPushRequest) (*hsmv1.PushResponse, error) {
	l, kinds, err := s.authorize(ctx, req.GetKinds())
	if err != nil {
		return nil, err
	}
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	dev := s.n.dev.Load()
	if len(req.GetRecords()) > maxPushRecord {
		return nil, status.Errorf(codes.InvalidArgument, "%d records exceed %d per push", len(req.GetRecords()), maxPushRecord)
	}
	recs, err := sealedFromWire(req.GetRecords())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	admit := func(ctx context.Context, rec store.Sealed, apply func(context.Context) (bool, error)) (bool, error) {
		r, err := s.n.store.OpenSealed(rec)
		if err != nil {
			return false, err
		}
		defer clear(r.Data)
		kind, err := deviceKind(rec.Kind)
		if err != nil {
			return false, err
		}
		var data []byte
		if !rec.Tombstone {
			data = r.Data
		}
		return dev.AdmitLinked(ctx, l, kind, rec.ID, data, apply)
	}
	applied, err := sy.HandleLinkPush(ctx, recs, kinds, admit)
	s.heard(l, applied, err)
	switch {
	case err == nil:
		return &hsmv1.PushResponse{Applied: uint32(applied)}, nil
	case errors.Is(err, store.ErrBadBox):
		s.n.log.Warn("replication link push refused: not a clone", "from", l.ClusterID)
		return nil, status.Errorf(codes.FailedPrecondition, "cluster %s: %v: %v", s.n.cfg.ClusterID, errNotAClone, err)
	case errors.Is(err, peersync.ErrKindNotLinked):
		return nil, status.Errorf(codes.PermissionDenied, "%v", err)
	}
	if _, ok := errors.AsType[*hsm.Error](err); ok {
		s.n.log.Warn("replication link push refused", "from", l.ClusterID, "err", err)
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return nil, peerStatus(err)
}

// The link settings, over the HSM service.

func linkInfo(l hsm.ReplicationLink, st linkStatus) *hsmv1.ReplicationLinkInfo {
	info := &hsmv1.ReplicationLinkInfo{
		Direction: l.Direction.String(), ClusterId: l.ClusterID, Address: l.Address, TrustAnchor: l.Anchor.Raw,
		Users: l.Users, CreatedUnixNanos: l.Created.UnixNano(), State: st.state, Error: st.err,
		LagNanos: int64(st.lag), RecordsBehind: uint64(max(st.behind, 0)), RecordsApplied: st.records,
	}
	if !st.lastSync.IsZero() {
		info.LastSyncUnixNanos = st.lastSync.UnixNano()
	}
	return info
}

// linkState is a link's status on this node, with what the node's
// configuration rules out.
func (n *Node) linkState(l hsm.ReplicationLink) linkStatus {
	st := n.links.snapshot(l.Key())
	switch {
	case l.Direction == hsm.LinkOutbound && n.cfg.LinkTLS == nil,
		l.Direction == hsm.LinkInbound && n.cfg.VerifyLinkedNode == nil:
		st.state, st.err = linkDisabled, "this HSM is not configured for replication links"
	case l.Direction == hsm.LinkInbound && st.state == linkReceiving && n.cfg.Now().Sub(st.lastSync) > time.Minute:
		st.state = linkWaiting
	}
	return st
}

func (s *hsmServer) CreateReplicationLink(ctx context.Context, req *hsmv1.CreateReplicationLinkRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		w := req.GetLink()
		if len(w.GetTrustAnchor()) > maxAnchorWire {
			return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "trust anchor of %d bytes is too long", len(w.GetTrustAnchor()))
		}
		dir, err := hsm.ParseLinkDirection(w.GetDirection())
		if err != nil {
			return nil, err
		}
		if w.GetClusterId() == s.n.cfg.ClusterID {
			return nil, invalidArgument(ck.CKR_ARGUMENTS_BAD, "a cluster cannot link to itself (%s)", w.GetClusterId())
		}
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		l := hsm.ReplicationLink{Direction: dir, ClusterID: w.GetClusterId(), Address: w.GetAddress(), Users: w.GetUsers()}
		return &hsmv1.Empty{}, dev.CreateReplicationLink(ctx, cs.dev, l, w.GetTrustAnchor(), ap)
	})
}

func (s *hsmServer) DeleteReplicationLink(ctx context.Context, req *hsmv1.DeleteReplicationLinkRequest) (*hsmv1.Empty, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.Empty, error) {
		dir, err := hsm.ParseLinkDirection(req.GetDirection())
		if err != nil {
			return nil, err
		}
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		return &hsmv1.Empty{}, dev.DeleteReplicationLink(ctx, cs.dev, dir, req.GetClusterId(), ap)
	})
}

// ListReplicationLinks needs no session, as NodeInfo: `cluster info` shows
// the links and their state on this HSM.
func (s *hsmServer) ListReplicationLinks(context.Context, *hsmv1.SessionRequest) (*hsmv1.ListReplicationLinksResponse, error) {
	dev := s.n.dev.Load()
	if dev == nil {
		return nil, errNotReady()
	}
	resp := &hsmv1.ListReplicationLinksResponse{}
	for _, l := range dev.ReplicationLinks() {
		resp.Links = append(resp.Links, linkInfo(l, s.n.linkState(l)))
	}
	return resp, nil
}
