package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Replication links between clones (clusters holding the same masking
// key): an outbound link on the source cluster and the matching inbound
// link on the clone keep the clone's token keys (and, if both say so,
// users) level with the source's. They are cluster settings, the same on
// every HSM once synchronized; each HSM reports its own view of a link's
// state.

// ReplicationLink is one side of a link, as an HSM reports it.
type ReplicationLink struct {
	Direction   string // "outbound" or "inbound"
	ClusterID   string // the other cluster
	Address     string // outbound: an HSM of the other cluster
	TrustAnchor []byte // DER: the CA the other cluster's node certificates chain to
	Users       bool
	Created     time.Time

	// The link's state on the HSM that answered.
	State          string // "waiting", "in-sync", "behind", "unreachable", "not-a-clone", "refused", "receiving", "disabled"
	Error          string
	Lag            time.Duration // outbound: age of the oldest change not known to be on the clone
	RecordsBehind  int           // outbound: records not known to be on the clone
	LastSync       time.Time     // outbound: last complete round; inbound: last request admitted
	RecordsApplied uint64
}

func fromLinkInfo(l *hsmv1.ReplicationLinkInfo) ReplicationLink {
	out := ReplicationLink{
		Direction: l.GetDirection(), ClusterID: l.GetClusterId(), Address: l.GetAddress(), TrustAnchor: l.GetTrustAnchor(),
		Users: l.GetUsers(), Created: time.Unix(0, l.GetCreatedUnixNanos()), State: l.GetState(), Error: l.GetError(),
		Lag: time.Duration(l.GetLagNanos()), RecordsBehind: int(min(l.GetRecordsBehind(), 1<<31-1)), RecordsApplied: l.GetRecordsApplied(),
	}
	if ns := l.GetLastSyncUnixNanos(); ns != 0 {
		out.LastSync = time.Unix(0, ns)
	}
	return out
}

// HSMReplicationLinks is one HSM's answer to Cluster.ReplicationLinks.
type HSMReplicationLinks struct {
	Address string
	Links   []ReplicationLink
	Err     error
}

// ReplicationLinks asks every HSM for the links and their state there, at
// once; it needs no login.
func (c *Cluster) ReplicationLinks(ctx context.Context) []HSMReplicationLinks {
	members := c.live()
	out := make([]HSMReplicationLinks, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			out[i].Address = m.addr
			rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
			defer cancel()
			r, err := m.rpc.ListReplicationLinks(rctx, &hsmv1.SessionRequest{})
			if err != nil {
				if e := refusal(m.addr, err); e != nil {
					err = e
				}
				out[i].Err = fmt.Errorf("client: replication links of HSM %s: %w", m.addr, err)
				return
			}
			for _, l := range r.GetLinks() {
				out[i].Links = append(out[i].Links, fromLinkInfo(l))
			}
		})
	}
	wg.Wait()
	return out
}

// CreateReplicationLink sets one side of a link (admins only, with
// approvals when the quorum-management quorum value is above 1): direction
// "outbound" with the address of an HSM of the clone, or "inbound" without
// one. trustAnchor (DER) is the CA the other cluster's node certificates
// chain to.
func (s *Session) CreateReplicationLink(ctx context.Context, l ReplicationLink, approvals *Approvals) error {
	cl, err := s.approved(ctx, "create replication link", approvals)
	if err != nil {
		return err
	}
	return s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.CreateReplicationLink(ctx, &hsmv1.CreateReplicationLinkRequest{Session: sid, Approvals: wireApprovals(approvals),
			Link: &hsmv1.ReplicationLinkInfo{Direction: l.Direction, ClusterId: l.ClusterID, Address: l.Address, TrustAnchor: l.TrustAnchor, Users: l.Users}})
		return err
	})
}

// DeleteReplicationLink removes one side of a link.
func (s *Session) DeleteReplicationLink(ctx context.Context, direction, clusterID string, approvals *Approvals) error {
	cl, err := s.approved(ctx, "delete replication link", approvals)
	if err != nil {
		return err
	}
	return s.empty(ctx, cl, func(ctx context.Context, m *member, sid uint64) error {
		_, err := m.rpc.DeleteReplicationLink(ctx, &hsmv1.DeleteReplicationLinkRequest{Session: sid, Direction: direction,
			ClusterId: clusterID, Approvals: wireApprovals(approvals)})
		return err
	})
}
