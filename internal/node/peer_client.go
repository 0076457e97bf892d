package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Message sizes of peer calls: a Push carries at most pushBatchBytes (one
// larger record goes alone; a record payload is at most store.MaxDataLen),
// and a Fetch reply is cut by the serving peer at about the same size.
const (
	pushBatchBytes  = peersync.MaxBatchBytes
	peerRecvMsgSize = 32 << 20
)

// peerClient is one peer over gRPC: a peersync.Peer, plus Hello and Clone.
type peerClient struct {
	self uint32
	id   uint32
	addr string
	conn *grpc.ClientConn
	rpc  hsmv1.PeerClient
}

var _ peersync.Peer = (*peerClient)(nil)

// newPeerClient prepares a connection; it dials lazily, on first use.
func newPeerClient(self uint32, p PeerAddr, peerTLS func(host string) (*tls.Config, error)) (*peerClient, error) {
	host, _, err := net.SplitHostPort(p.Addr)
	if err != nil {
		return nil, fmt.Errorf("node: peer %d at %s: %w", p.ID, p.Addr, err)
	}
	c, err := peerTLS(host)
	if err != nil {
		return nil, fmt.Errorf("node: peer %d at %s: TLS: %w", p.ID, p.Addr, err)
	}
	c = c.Clone()
	c.MinVersion = tls.VersionTLS13
	conn, err := grpc.NewClient(p.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(c)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		// A peer back after a long outage is reconnected within seconds,
		// not gRPC's default of up to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second}, MinConnectTimeout: 5 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(peerRecvMsgSize), grpc.MaxCallSendMsgSize(maxRecvMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("node: peer %d at %s: %w", p.ID, p.Addr, err)
	}
	return &peerClient{self: self, id: p.ID, addr: p.Addr, conn: conn, rpc: hsmv1.NewPeerClient(conn)}, nil
}

func (p *peerClient) close() { p.conn.Close() }

func (p *peerClient) connected() bool { return p.conn.GetState() == connectivity.Ready }

// heardFrom is told that peer id has just called this node, so it is up.
// A link to it in TRANSIENT_FAILURE (the peer was down or cut off) is
// waiting out its reconnect backoff, up to MaxDelay, and fails every call
// at once meanwhile, min_nodes pushes included: it reconnects now instead.
// A restarted node calls its peers as it starts (catch-up, anti-entropy),
// so their links to it are back by the time it serves.
func (n *Node) heardFrom(id uint32) {
	for _, p := range n.peers {
		if p.id == id && p.conn.GetState() == connectivity.TransientFailure {
			p.conn.ResetConnectBackoff()
		}
	}
}

func (p *peerClient) ID() uint32 { return p.id }

// Push sends records in batches that fit a message.
func (p *peerClient) Push(ctx context.Context, recs []store.Sealed) (int, error) {
	applied := 0
	req := &hsmv1.PushRequest{From: p.self}
	size := 0
	flush := func() error {
		if len(req.Records) == 0 {
			return nil
		}
		resp, err := p.rpc.Push(ctx, req)
		if err != nil {
			return err
		}
		applied += int(resp.GetApplied())
		req, size = &hsmv1.PushRequest{From: p.self}, 0
		return nil
	}
	for _, r := range recs {
		b, err := r.MarshalBinary()
		if err != nil {
			return applied, fmt.Errorf("node: push to peer %d: %w", p.id, err)
		}
		if size+len(b) > pushBatchBytes {
			if err := flush(); err != nil {
				return applied, err
			}
		}
		req.Records = append(req.Records, &hsmv1.SealedRecord{Sealed: b})
		size += len(b)
	}
	return applied, flush()
}

func (p *peerClient) Digest(ctx context.Context, buckets int) ([][]byte, error) {
	if buckets <= 0 || buckets > math.MaxUint32 {
		return nil, fmt.Errorf("node: digest of %d buckets", buckets)
	}
	resp, err := p.rpc.Digest(ctx, &hsmv1.DigestRequest{Buckets: uint32(buckets)})
	if err != nil {
		return nil, err
	}
	return resp.GetBuckets(), nil
}

func (p *peerClient) Versions(ctx context.Context, buckets int, which []int) ([]peersync.Meta, error) {
	req := &hsmv1.VersionsRequest{Buckets: uint32(buckets)}
	for _, b := range which {
		req.Bucket = append(req.Bucket, uint32(b))
	}
	resp, err := p.rpc.Versions(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]peersync.Meta, 0, len(resp.GetRecords()))
	for _, r := range resp.GetRecords() {
		out = append(out, metaFromWire(r))
	}
	return out, nil
}

// Fetch asks for records in one call; the peer leaves out what does not
// fit a reply, and peersync asks again for what it still misses.
func (p *peerClient) Fetch(ctx context.Context, keys []peersync.Key) ([]store.Sealed, error) {
	req := &hsmv1.FetchRequest{Keys: make([]*hsmv1.RecordKey, 0, len(keys))}
	for _, k := range keys {
		req.Keys = append(req.Keys, &hsmv1.RecordKey{Kind: uint32(k.Kind), Id: k.ID})
	}
	resp, err := p.rpc.Fetch(ctx, req)
	if err != nil {
		return nil, err
	}
	recs, err := sealedFromWire(resp.GetRecords())
	if err != nil {
		return nil, fmt.Errorf("node: fetch from peer %d: %w", p.id, err)
	}
	return recs, nil
}

func metaToWire(m peersync.Meta) *hsmv1.RecordMeta {
	return &hsmv1.RecordMeta{
		Kind: uint32(m.Kind), Id: m.ID, Wall: m.Version.Wall, Logical: m.Version.Logical,
		Node: m.Version.Node, Tombstone: m.Tombstone,
	}
}

func metaFromWire(r *hsmv1.RecordMeta) peersync.Meta {
	return peersync.Meta{
		Key:       peersync.Key{Kind: store.Kind(r.GetKind()), ID: r.GetId()},
		Version:   store.Version{Wall: r.GetWall(), Logical: r.GetLogical(), Node: r.GetNode()},
		Tombstone: r.GetTombstone(),
	}
}

func sealedFromWire(recs []*hsmv1.SealedRecord) ([]store.Sealed, error) {
	out := make([]store.Sealed, 0, len(recs))
	for i, r := range recs {
		var s store.Sealed
		if err := s.UnmarshalBinary(r.GetSealed()); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func sealedToWire(recs []store.Sealed) ([]*hsmv1.SealedRecord, error) {
	out := make([]*hsmv1.SealedRecord, 0, len(recs))
	for _, r := range recs {
		b, err := r.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = append(out, &hsmv1.SealedRecord{Sealed: b})
	}
	return out, nil
}

// CatchUp asks the peer to push what it queued for this node now.
func (p *peerClient) CatchUp(ctx context.Context) (peersync.Backlog, error) {
	resp, err := p.rpc.CatchUp(ctx, &hsmv1.CatchUpRequest{From: p.self})
	if err != nil {
		return peersync.Backlog{}, err
	}
	return peersync.Backlog{
		Records: int(min(resp.GetRecords(), math.MaxInt32)), Lag: time.Duration(resp.GetLagNanos()),
		Complete: resp.GetComplete(), Flushed: resp.GetFlushed(),
	}, nil
}
