package node

import (
	"cmp"
	"context"
	"slices"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// This file: what the node says about itself.

// nodeStats are the node's counters (NodeInfo and metrics).
type nodeStats struct {
	tokenObjects   int // live token objects in the store
	users          int // users in the store
	sessions       int // open client sessions
	sessionObjects int // session objects of those sessions
}

// stats reads the device's counts, or, on a node with no device yet, counts
// records from the store's metadata (no payload is opened).
func (n *Node) stats(ctx context.Context) (nodeStats, error) {
	var st nodeStats
	st.sessions, st.sessionObjects = n.sessions.counts()
	if dev := n.dev.Load(); dev != nil {
		// The device holds every record of the store and counts them as
		// they change: no scan of a million keys per NodeInfo or scrape.
		st.tokenObjects, st.users = dev.Holdings()
		return st, nil
	}
	err := n.store.Versions(ctx, func(k store.Kind, _ string, _ store.Version, tombstone bool) error {
		switch {
		case tombstone:
		case k == store.KindObject:
			st.tokenObjects++
		case k == store.KindUser:
			st.users++
		}
		return nil
	})
	return st, err
}

func (s *hsmServer) Mechanisms(context.Context, *hsmv1.Empty) (*hsmv1.MechanismsResponse, error) {
	dev := s.n.dev.Load()
	if dev == nil {
		return nil, errNotReady()
	}
	resp := &hsmv1.MechanismsResponse{}
	for _, m := range dev.Mechanisms() {
		info, err := dev.MechanismInfo(m)
		if err != nil {
			return nil, deviceStatus(err)
		}
		resp.Mechanisms = append(resp.Mechanisms, mechanismInfo(m, info))
	}
	return resp, nil
}

// NodeInfo needs no session: it is how clients and operators check a node.
func (s *hsmServer) NodeInfo(ctx context.Context, _ *hsmv1.Empty) (*hsmv1.NodeInfoResponse, error) {
	n := s.n
	st, err := n.stats(ctx)
	if err != nil {
		return nil, deviceStatus(err)
	}
	resp := &hsmv1.NodeInfoResponse{
		NodeId: n.cfg.NodeID, ClusterId: n.cfg.ClusterID, HsmId: n.cfg.HSMID, Ready: n.Ready(),
		Fips: n.cfg.Device.FIPS, Version: n.cfg.Version,
		TokenObjects: uint32(st.tokenObjects), SessionObjects: uint32(st.sessionObjects),
		Sessions: uint32(st.sessions), Users: uint32(st.users),
		CryptoBackend: cryptobackend.Current().String(), Activated: n.activated(),
	}
	sy := n.syncState()
	for _, p := range n.peers {
		b := sy.behind[p.id]
		resp.Peers = append(resp.Peers, &hsmv1.PeerStatus{
			NodeId: p.id, Address: p.addr, Connected: p.connected(), SyncLagNanos: int64(sy.lag[p.id]),
			BehindRecords: uint64(max(b.Records, 0)), BehindNanos: int64(b.Lag), QueuedRecords: uint64(max(sy.queued[p.id], 0)),
		})
	}
	slices.SortFunc(resp.Peers, func(a, b *hsmv1.PeerStatus) int { return cmp.Compare(a.NodeId, b.NodeId) })
	return resp, nil
}

// activated reports whether the cluster is activated, as this node's device
// knows it (false before the device is open).
func (n *Node) activated() bool {
	dev := n.dev.Load()
	return dev != nil && dev.Activated()
}
