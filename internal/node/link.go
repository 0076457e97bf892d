package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// This file: the outbound side of replication links (hsm.ReplicationLink).
// Every node of the source cluster runs every outbound link, one round each
// Config.LinkInterval (peersync.Syncer.Mirror): a node that is down leaves
// the others doing it, and two nodes pushing the same record cost a
// duplicate the clone's last-writer-wins ignores. The clone's side is in
// link_server.go.

// Link states, as ListReplicationLinks and `cluster info` show them.
const (
	linkWaiting     = "waiting"     // no round yet since this node started
	linkInSync      = "in-sync"     // the last round left the clone holding everything
	linkBehind      = "behind"      // the last round reached the clone but did not deliver everything
	linkUnreachable = "unreachable" // the last round did not reach the clone
	linkNotAClone   = "not-a-clone" // the other cluster holds another masking key
	linkRefused     = "refused"     // the other cluster refused this one (no or another inbound link)
	linkReceiving   = "receiving"   // inbound: the source pushed or compared within the last minute
	linkDisabled    = "disabled"    // this node is not configured to run links of this direction
)

// errNotAClone: the two clusters hold different masking keys.
var errNotAClone = errors.New("not a clone: masking keys differ")

// linkStatus is one link's state on this node.
type linkStatus struct {
	state    string
	err      string
	lag      time.Duration
	behind   int
	lastSync time.Time // outbound: last complete round's snapshot; inbound: last request admitted
	records  uint64    // pushed (outbound) or applied (inbound) since this node started
}

// links holds this node's link clients and the state of every link.
type links struct {
	mu      sync.Mutex
	clients map[string]*linkClient // outbound, by hsm.ReplicationLink.Key
	status  map[string]*linkStatus // both directions, by key
}

func (l *links) get(key string) *linkStatus {
	if l.status == nil {
		l.status = map[string]*linkStatus{}
	}
	st := l.status[key]
	if st == nil {
		st = &linkStatus{state: linkWaiting}
		l.status[key] = st
	}
	return st
}

// snapshot returns a copy of key's status.
func (l *links) snapshot(key string) linkStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return *l.get(key)
}

func (l *links) update(key string, f func(*linkStatus)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l.get(key))
}

func (l *links) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, c := range l.clients {
		c.conn.Close()
		delete(l.clients, k)
	}
}

// linkKinds are the record kinds a link replicates.
func linkKinds(l hsm.ReplicationLink) []store.Kind {
	if l.Users {
		return []store.Kind{store.KindObject, store.KindUser}
	}
	return []store.Kind{store.KindObject}
}

func kindsToWire(kinds []store.Kind) []uint32 {
	out := make([]uint32, len(kinds))
	for i, k := range kinds {
		out[i] = uint32(k)
	}
	return out
}

// linkClient is a connection to an HSM of a clone: a peersync.LinkTarget.
type linkClient struct {
	link  hsm.ReplicationLink
	kinds []store.Kind
	conn  *grpc.ClientConn
	rpc   hsmv1.ReplicationLinkClient
}

var _ peersync.LinkTarget = (*linkClient)(nil)

func (n *Node) newLinkClient(l hsm.ReplicationLink) (*linkClient, error) {
	host, _, err := net.SplitHostPort(l.Address)
	if err != nil {
		return nil, fmt.Errorf("node: link to %s at %s: %w", l.ClusterID, l.Address, err)
	}
	c, err := n.cfg.LinkTLS(host, l.Anchor, l.ClusterID)
	if err != nil {
		return nil, fmt.Errorf("node: link to %s at %s: TLS: %w", l.ClusterID, l.Address, err)
	}
	c = c.Clone()
	c.MinVersion = tls.VersionTLS13
	conn, err := grpc.NewClient(l.Address,
		grpc.WithTransportCredentials(credentials.NewTLS(c)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second}, MinConnectTimeout: 5 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(peerRecvMsgSize), grpc.MaxCallSendMsgSize(maxRecvMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("node: link to %s at %s: %w", l.ClusterID, l.Address, err)
	}
	return &linkClient{link: l, kinds: linkKinds(l), conn: conn, rpc: hsmv1.NewReplicationLinkClient(conn)}, nil
}

// same reports whether c was made for l as it is now.
func (c *linkClient) same(l hsm.ReplicationLink) bool {
	return c.link.Address == l.Address && c.link.Users == l.Users && c.link.Anchor.Equal(l.Anchor) && c.link.Created.Equal(l.Created)
}

func (c *linkClient) Digest(ctx context.Context, buckets int) ([][]byte, error) {
	if buckets <= 0 || buckets > math.MaxUint32 {
		return nil, fmt.Errorf("node: digest of %d buckets", buckets)
	}
	resp, err := c.rpc.Digest(ctx, &hsmv1.LinkDigestRequest{Buckets: uint32(buckets), Kinds: kindsToWire(c.kinds)})
	if err != nil {
		return nil, err
	}
	return resp.GetBuckets(), nil
}

func (c *linkClient) Versions(ctx context.Context, buckets int, which []int) ([]peersync.Meta, error) {
	req := &hsmv1.LinkVersionsRequest{Buckets: uint32(buckets), Kinds: kindsToWire(c.kinds)}
	for _, b := range which {
		req.Bucket = append(req.Bucket, uint32(b))
	}
	resp, err := c.rpc.Versions(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]peersync.Meta, 0, len(resp.GetRecords()))
	for _, r := range resp.GetRecords() {
		out = append(out, metaFromWire(r))
	}
	return out, nil
}

// Push sends records in one request; peersync batches them within the
// size of a message.
func (c *linkClient) Push(ctx context.Context, recs []store.Sealed) (int, error) {
	wire, err := sealedToWire(recs)
	if err != nil {
		return 0, fmt.Errorf("node: push to %s: %w", c.link.ClusterID, err)
	}
	resp, err := c.rpc.Push(ctx, &hsmv1.LinkPushRequest{Kinds: kindsToWire(c.kinds), Records: wire})
	if err != nil {
		return 0, err
	}
	return int(resp.GetApplied()), nil
}

// hello checks the clone holds this cluster's masking key and admits what
// the link replicates.
func (n *Node) linkHello(ctx context.Context, c *linkClient) error {
	check, err := n.store.MaskingKeyCheck()
	if err != nil {
		return err
	}
	resp, err := c.rpc.Hello(ctx, &hsmv1.LinkHelloRequest{ClusterId: n.cfg.ClusterID, MkCheck: check, Kinds: kindsToWire(c.kinds)})
	if err != nil {
		return err
	}
	if resp.GetClusterId() != c.link.ClusterID {
		return fmt.Errorf("%w: the HSM at %s is of cluster %q, not %q", errLinkRefused, c.link.Address, resp.GetClusterId(), c.link.ClusterID)
	}
	if !bytes.Equal(resp.GetMkCheck(), check) {
		return errNotAClone
	}
	return nil
}

// errLinkRefused: the other side does not admit this link as set.
var errLinkRefused = errors.New("refused by the other cluster")

// linkLoop runs the outbound links until ctx ends.
func (n *Node) linkLoop(ctx context.Context) error {
	defer n.links.closeAll()
	if n.cfg.LinkTLS == nil {
		return nil
	}
	t := time.NewTicker(n.cfg.LinkInterval)
	defer t.Stop()
	for {
		n.linkRound(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// linkRound runs one round of every outbound link, one after the other.
func (n *Node) linkRound(ctx context.Context) {
	dev, sy := n.dev.Load(), n.syncer.Load()
	if dev == nil || sy == nil || !sy.Ready() {
		return // a joining node: its store is not the cluster's yet
	}
	want := map[string]hsm.ReplicationLink{}
	for _, l := range dev.ReplicationLinks() {
		if l.Direction == hsm.LinkOutbound {
			want[l.Key()] = l
		}
	}
	n.links.mu.Lock()
	if n.links.clients == nil {
		n.links.clients = map[string]*linkClient{}
	}
	for k, c := range n.links.clients {
		if l, ok := want[k]; !ok || !c.same(l) {
			c.conn.Close()
			delete(n.links.clients, k)
			delete(n.links.status, k)
		}
	}
	var run []*linkClient
	for k, l := range want {
		c := n.links.clients[k]
		if c == nil {
			var err error
			if c, err = n.newLinkClient(l); err != nil {
				st := n.links.get(k)
				st.state, st.err = linkUnreachable, err.Error()
				continue
			}
			n.links.clients[k] = c
		}
		run = append(run, c)
	}
	n.links.mu.Unlock()
	for _, c := range run {
		if ctx.Err() != nil {
			return
		}
		n.runLink(ctx, sy, c)
	}
}

// runLink runs one round of one link and records its outcome.
func (n *Node) runLink(ctx context.Context, sy *peersync.Syncer, c *linkClient) {
	key := c.link.Key()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := n.linkHello(hctx, c)
	cancel()
	var res peersync.MirrorResult
	reached := err == nil
	if err == nil {
		res, err = sy.Mirror(ctx, c, c.kinds)
		reached = res.Reached
	}
	now := n.cfg.Now()
	prev := n.links.snapshot(key)
	var behind int
	var lag time.Duration
	if err != nil && !reached {
		// Not reached: count what changed here since the last complete
		// round (or since the link was made), an upper bound.
		since := prev.lastSync
		if since.IsZero() {
			since = c.link.Created
		}
		oldest, count := n.changedSince(ctx, c.kinds, since)
		behind = count
		if count > 0 {
			lag = max(now.Sub(oldest), 0)
		}
	} else if err != nil {
		behind = res.Behind - res.Pushed
		if behind > 0 && !res.Oldest.IsZero() {
			lag = max(now.Sub(res.Oldest), 0)
		}
	}
	n.links.update(key, func(st *linkStatus) {
		st.records += uint64(res.Pushed)
		st.behind, st.lag = behind, lag
		if err == nil {
			st.state, st.err, st.lastSync = linkInSync, "", res.Snapshot
			return
		}
		st.err = err.Error()
		switch {
		case errors.Is(err, errNotAClone), status.Code(err) == codes.FailedPrecondition:
			st.state = linkNotAClone
		case errors.Is(err, errLinkRefused), status.Code(err) == codes.PermissionDenied:
			st.state = linkRefused
		case reached:
			st.state = linkBehind
		default:
			st.state = linkUnreachable
		}
	})
	if err != nil && prev.err != err.Error() {
		n.log.Warn("replication link round failed", "link", key, "err", err)
	} else if err == nil && prev.state != linkInSync {
		n.log.Info("replication link in sync", "link", key, "pushed", res.Pushed)
	}
}

// changedSince counts the live or deleted records of kinds written after
// since, and returns the oldest write time among them.
func (n *Node) changedSince(ctx context.Context, kinds []store.Kind, since time.Time) (time.Time, int) {
	want := map[store.Kind]bool{}
	for _, k := range kinds {
		want[k] = true
	}
	var oldest time.Time
	count := 0
	err := n.store.Versions(ctx, func(k store.Kind, _ string, v store.Version, _ bool) error {
		t := time.Unix(0, v.Wall)
		if want[k] && t.After(since) {
			count++
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
		return nil
	})
	if err != nil {
		n.log.Debug("replication link: listing local versions", "err", err)
	}
	return oldest, count
}
