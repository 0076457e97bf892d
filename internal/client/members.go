package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"

	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// ErrBadMembership means an HSM described a membership that cannot be
// used: an address that is not host:port, or more HSMs than a client
// routes to.
var ErrBadMembership = errors.New("unusable cluster membership")

// Members asks the HSMs of cfg, one after another until one answers, for
// the cluster's current HSMs: the one that answered and the peers it
// lists in its NodeInfo. Each HSM is reached through cfg.TLS, so only an
// HSM whose certificate verifies as one of the cluster's, at the address
// dialled, is believed; an address it lists is dialled later under the
// same rule, so a wrong one is unusable, never trusted. `coffer configure
// -m` writes the result into the configuration file; a running Cluster
// refreshes its members the same way.
func Members(ctx context.Context, cfg Config) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var errs []error
	for _, addr := range cfg.HSMs {
		got, err := askMembers(ctx, cfg, addr)
		if err == nil {
			return got, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("client: cluster membership: %w: %w", ErrNoHSM, errors.Join(errs...))
}

func askMembers(ctx context.Context, cfg Config, addr string) ([]string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("HSM %s: %w", addr, err)
	}
	tlsCfg, err := cfg.TLS(host)
	if err != nil {
		return nil, fmt.Errorf("HSM %s: TLS: %w", addr, err)
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return nil, fmt.Errorf("HSM %s: %w", addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	info, err := hsmv1.NewHSMClient(conn).NodeInfo(ctx, &hsmv1.Empty{})
	if err != nil {
		if r := refusal(addr, err); r != nil {
			err = r
		}
		return nil, fmt.Errorf("HSM %s: node info: %w", addr, err)
	}
	return membersOf(addr, info)
}

// membersOf is the membership an HSM reached at self describes: itself,
// then its peers in node id order.
func membersOf(self string, info *hsmv1.NodeInfoResponse) ([]string, error) {
	out := []string{self}
	for _, p := range info.GetPeers() {
		a := p.GetAddress()
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("HSM %s lists peer %d at %q: %w", self, p.GetNodeId(), a, ErrBadMembership)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) > maxHSMs {
		return nil, fmt.Errorf("HSM %s lists %d HSMs, at most %d: %w", self, len(out), maxHSMs, ErrBadMembership)
	}
	return out, nil
}

// membershipLoop refreshes the members every MembershipInterval, and soon
// after one goes down, until Close.
func (c *Cluster) membershipLoop() {
	if c.cfg.MembershipInterval <= 0 {
		return
	}
	t := time.NewTicker(c.cfg.MembershipInterval)
	defer t.Stop()
	gap := min(time.Second, c.cfg.MembershipInterval)
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.refreshNow:
		}
		if err := c.refreshMembers(c.ctx); err != nil && !c.closed() {
			c.log.Debug("cluster membership not refreshed", "err", err)
		}
		c.memberRounds.Add(1)
		select { // bounded: at most one refresh per gap, whatever fails
		case <-c.ctx.Done():
			return
		case <-time.After(gap):
		}
	}
}

// refreshMembers asks one HSM that is up (over its verified connection)
// for its NodeInfo and applies the membership it describes.
func (c *Cluster) refreshMembers(ctx context.Context) error {
	m := c.pick(c.all.Load())
	if m == nil {
		return ErrNoHSM
	}
	c.busy(m)
	defer c.idle(m)
	ctx, stop := m.bound(ctx)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	info, err := m.rpc.NodeInfo(ctx, &hsmv1.Empty{})
	c.heardFrom(m, err)
	if err != nil {
		return fmt.Errorf("HSM %s: node info: %w", m.addr, err)
	}
	c.setNodeID(m, info.GetNodeId())
	if _, err := membersOf(m.addr, info); err != nil {
		return err
	}
	c.applyMembers(m, info)
	return nil
}

// applyMembers makes the members what from (an HSM of the cluster, reached
// over a connection whose certificate verified) says: a peer it lists that
// is no member yet (by node id, or by address) is dialled, under the same
// TLS rules as every member, so an address is only ever used once its HSM
// proves it is one of the cluster's; a member it does not list (by node
// id once known, else by address) is dropped unless it is up and
// connected: during a rolling restart an HSM may briefly list an older
// membership, and an HSM that left is stopped. Member indexes are never reused; after maxHSMs members in
// the Cluster's life, more are not added.
func (c *Cluster) applyMembers(from *member, info *hsmv1.NodeInfoResponse) {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if c.closed() {
		return
	}
	listedID := map[uint32]bool{info.GetNodeId(): true}
	listedAddr := map[string]bool{from.addr: true}
	for _, p := range info.GetPeers() {
		listedID[p.GetNodeId()] = true
		listedAddr[p.GetAddress()] = true
	}
	live := c.live()
	for _, m := range live {
		id := m.nodeID.Load()
		if m == from || id != 0 && listedID[id] || id == 0 && listedAddr[m.addr] ||
			m.up.Load() && m.conn.GetState() == connectivity.Ready {
			continue
		}
		c.removeMember(m)
	}
	slots := *c.slots.Load()
	for _, p := range info.GetPeers() {
		if slices.ContainsFunc(live, func(m *member) bool {
			return !m.removed.Load() && (m.nodeID.Load() == p.GetNodeId() || m.addr == p.GetAddress())
		}) {
			continue
		}
		if len(slots) >= maxHSMs {
			c.log.Warn("HSM joined the cluster, but this client has had too many; dial the cluster again to use it",
				"hsm", p.GetAddress(), "node", p.GetNodeId(), "max", maxHSMs)
			continue
		}
		m, err := c.newMember(len(slots), p.GetAddress())
		if err != nil {
			c.log.Warn("HSM joined the cluster; cannot dial it", "hsm", p.GetAddress(), "err", err)
			continue
		}
		slots = append(slots[:len(slots):len(slots)], m)
		c.slots.Store(&slots)
		c.all.Store(c.all.Load() | m.bit())
		live = append(live, m)
		c.log.Info("HSM joined the cluster", "hsm", m.addr, "node", p.GetNodeId(), "told-by", from.addr)
		m.mu.Lock()
		m.attempts = 1 // this first probe; the reconnect loop tries again as for any down HSM
		m.mu.Unlock()
		c.loop.Go(func() { c.reconnect(m) })
	}
}

// removeMember drops m, which left the cluster: it is never routed to
// again and its connection is closed. Called with memMu held.
func (c *Cluster) removeMember(m *member) {
	m.mu.Lock()
	m.removed.Store(true)
	m.up.Store(false)
	m.epoch.Add(1)
	m.life.Load().cancel(errors.New("the HSM left the cluster"))
	m.mu.Unlock()
	c.all.Store(c.all.Load() &^ m.bit())
	if err := m.conn.Close(); err != nil {
		c.log.Debug("close HSM that left", "hsm", m.addr, "err", err)
	}
	c.log.Info("HSM left the cluster", "hsm", m.addr, "node", m.nodeID.Load())
}
