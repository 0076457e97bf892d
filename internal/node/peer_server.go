package node

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Bounds on peer requests.
const (
	maxFetchKeys  = 4096
	maxPushRecord = 4096
)

// peerServer serves the Peer service to authorized nodes of the cluster.
type peerServer struct {
	hsmv1.UnimplementedPeerServer
	n *Node
}

// authorize identifies the calling node, or refuses the call. claimed, if
// nonzero, is the node id the request says it comes from, which must be the
// certificate's.
func (s *peerServer) authorize(ctx context.Context, claimed uint32) (uint32, error) {
	// The handshake also admits client certificates of the cluster's trust
	// anchors; only a node certificate makes a peer.
	if err := s.n.verifyNodeConnection(ctx); err != nil {
		return 0, status.Errorf(codes.PermissionDenied, "not a node of cluster %s: %v", s.n.cfg.ClusterID, err)
	}
	id, err := s.n.cfg.AuthorizePeer(ctx)
	if err != nil {
		return 0, status.Errorf(codes.PermissionDenied, "not a node of cluster %s: %v", s.n.cfg.ClusterID, err)
	}
	if id == 0 || id == s.n.cfg.NodeID {
		return 0, status.Errorf(codes.PermissionDenied, "caller's certificate names node %d", id)
	}
	if claimed != 0 && claimed != id {
		return 0, status.Errorf(codes.PermissionDenied, "request says node %d, certificate says node %d", claimed, id)
	}
	s.n.heardFrom(id)
	return id, nil
}

// syncer returns the running syncer, or Unavailable before it runs.
func (s *peerServer) syncer() (*peersync.Syncer, error) {
	sy := s.n.syncer.Load()
	if sy == nil {
		return nil, status.Error(codes.Unavailable, "node is not synchronizing yet")
	}
	return sy, nil
}

func (s *peerServer) Hello(ctx context.Context, req *hsmv1.HelloRequest) (*hsmv1.HelloResponse, error) {
	if _, err := s.authorize(ctx, req.GetNodeId()); err != nil {
		return nil, err
	}
	resp := &hsmv1.HelloResponse{NodeId: s.n.cfg.NodeID, ClusterId: s.n.cfg.ClusterID, Ready: s.n.Ready()}
	if s.n.store.HasMaskingKey() {
		check, err := s.n.store.MaskingKeyCheck()
		if err != nil {
			return nil, peerStatus(err)
		}
		resp.MkCheck = check
	}
	return resp, nil
}

func (s *peerServer) Push(ctx context.Context, req *hsmv1.PushRequest) (*hsmv1.PushResponse, error) {
	from, err := s.authorize(ctx, req.GetFrom())
	if err != nil {
		return nil, err
	}
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	if len(req.GetRecords()) > maxPushRecord {
		return nil, status.Errorf(codes.InvalidArgument, "%d records exceed %d per push", len(req.GetRecords()), maxPushRecord)
	}
	recs, err := sealedFromWire(req.GetRecords())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	applied, err := sy.HandlePush(ctx, from, recs)
	if err != nil {
		return nil, peerStatus(err)
	}
	return &hsmv1.PushResponse{Applied: uint32(applied)}, nil
}

func checkBuckets(b uint32) error {
	if b == 0 || b > peersync.MaxBuckets {
		return status.Errorf(codes.InvalidArgument, "buckets %d not in 1..%d", b, peersync.MaxBuckets)
	}
	return nil
}

// checkBucketList checks the buckets a Versions call asks for, of a digest
// of buckets buckets, and returns them as indexes.
func checkBucketList(buckets uint32, bucket []uint32) ([]int, error) {
	if err := checkBuckets(buckets); err != nil {
		return nil, err
	}
	if len(bucket) > int(buckets) {
		return nil, status.Errorf(codes.InvalidArgument, "%d buckets asked of %d", len(bucket), buckets)
	}
	which := make([]int, 0, len(bucket))
	for _, b := range bucket {
		if b >= buckets {
			return nil, status.Errorf(codes.InvalidArgument, "bucket %d not below %d", b, buckets)
		}
		which = append(which, int(b))
	}
	return which, nil
}

func (s *peerServer) Digest(ctx context.Context, req *hsmv1.DigestRequest) (*hsmv1.DigestResponse, error) {
	if _, err := s.authorize(ctx, 0); err != nil {
		return nil, err
	}
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	if err := checkBuckets(req.GetBuckets()); err != nil {
		return nil, err
	}
	d, err := sy.HandleDigest(ctx, int(req.GetBuckets()))
	if err != nil {
		return nil, peerStatus(err)
	}
	return &hsmv1.DigestResponse{Buckets: d}, nil
}

func (s *peerServer) Versions(ctx context.Context, req *hsmv1.VersionsRequest) (*hsmv1.VersionsResponse, error) {
	if _, err := s.authorize(ctx, 0); err != nil {
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
	metas, err := sy.HandleVersions(ctx, int(req.GetBuckets()), which)
	if err != nil {
		return nil, peerStatus(err)
	}
	resp := &hsmv1.VersionsResponse{Records: make([]*hsmv1.RecordMeta, 0, len(metas))}
	for _, m := range metas {
		resp.Records = append(resp.Records, metaToWire(m))
	}
	return resp, nil
}

func (s *peerServer) Fetch(ctx context.Context, req *hsmv1.FetchRequest) (*hsmv1.FetchResponse, error) {
	if _, err := s.authorize(ctx, 0); err != nil {
		return nil, err
	}
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	if len(req.GetKeys()) > maxFetchKeys {
		return nil, status.Errorf(codes.InvalidArgument, "%d keys exceed %d per fetch", len(req.GetKeys()), maxFetchKeys)
	}
	keys := make([]peersync.Key, 0, len(req.GetKeys()))
	for _, k := range req.GetKeys() {
		kind := store.Kind(k.GetKind())
		if k.GetKind() > 255 || !kind.Valid() || k.GetId() == "" || len(k.GetId()) > store.MaxIDLen {
			return nil, status.Errorf(codes.InvalidArgument, "invalid record key (kind %d, id of %d bytes)", k.GetKind(), len(k.GetId()))
		}
		keys = append(keys, peersync.Key{Kind: kind, ID: k.GetId()})
	}
	recs, err := sy.HandleFetch(ctx, keys)
	if err != nil {
		return nil, peerStatus(err)
	}
	wire, err := sealedToWire(recs)
	if err != nil {
		return nil, peerStatus(err)
	}
	return &hsmv1.FetchResponse{Records: wire}, nil
}

// CatchUp pushes to the calling node what this node queued for it, for
// about peersync.CatchUpBudget, and reports the rest.
func (s *peerServer) CatchUp(ctx context.Context, req *hsmv1.CatchUpRequest) (*hsmv1.CatchUpResponse, error) {
	from, err := s.authorize(ctx, req.GetFrom())
	if err != nil {
		return nil, err
	}
	sy, err := s.syncer()
	if err != nil {
		return nil, err
	}
	b, err := sy.HandleCatchUp(ctx, from)
	if err != nil {
		return nil, peerStatus(err)
	}
	return &hsmv1.CatchUpResponse{
		Records: uint64(max(b.Records, 0)), LagNanos: int64(b.Lag), Complete: b.Complete, Flushed: b.Flushed,
	}, nil
}
