package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"

	"github.com/coffer-hsm/coffer/internal/batch"
	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Cluster is a connection to every HSM of one cluster. It is safe for
// concurrent use.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	fresh *freshTable

	// slots are every member the Cluster ever had, by member index: a
	// member that left the cluster stays (removed, never up) so that no
	// index is reused. Replaced whole (copy on write) under memMu.
	slots atomic.Pointer[[]*member]
	memMu sync.Mutex    // serialises membership changes
	all   atomic.Uint64 // routing mask with every member that has not left
	// refreshNow asks the membership loop for a refresh (a member went
	// down).
	refreshNow chan struct{}

	randMu sync.Mutex // guards rand, which is not safe for concurrent use
	rand   *rand.Rand

	idMu   sync.RWMutex
	byNode map[uint32]int // node id → index in members, learnt from NodeInfo

	born time.Time // the monotonic origin of member.heard

	ctx          context.Context // ends at Close; parent of reconnect probes
	cancel       context.CancelFunc
	loop         sync.WaitGroup // the reconnect and watch goroutines
	closeOnce    sync.Once
	closeErr     error
	rounds       atomic.Int64 // reconnect rounds completed, for tests
	watchRounds  atomic.Int64 // silence checks completed, for tests
	memberRounds atomic.Int64 // membership refreshes completed, for tests
}

// member is one HSM of the cluster.
type member struct {
	idx   int
	addr  string
	conn  *grpc.ClientConn
	rpc   hsmv1.HSMClient
	batch *batch.Client // nil: every request is its own RPC (Config.Unbatched)

	outstanding atomic.Int64  // requests in flight, session set-up included
	up          atomic.Bool   // routable
	epoch       atomic.Uint64 // times marked down: node sessions of an older epoch are not reused
	nodeID      atomic.Uint32 // 0 until a NodeInfo answered
	probes      atomic.Int64  // reconnect probes sent, for tests
	removed     atomic.Bool   // it left the cluster: never up again, its connection closed
	// reconnecting is set while a reconnect probe runs: one at a time (a
	// member that joined is probed at once, and by the reconnect loop).
	reconnecting atomic.Bool

	life    atomic.Pointer[memberLife] // ends when it is marked down (silence.go)
	heard   atomic.Int64               // last sign of life, since Cluster.born
	probed  atomic.Int64               // last liveness probe sent, since Cluster.born
	probing atomic.Bool                // a liveness probe is in flight

	// mu serialises the up/down transitions (with the epoch change) and
	// guards attempts and gaveUp.
	mu       sync.Mutex
	attempts int  // reconnect attempts since it went down
	gaveUp   bool // ReconnectAttempts exhausted
}

func (m *member) bit() uint64 { return 1 << m.idx }

// Dial connects to every HSM of cfg and returns once each has answered or
// failed to; it fails if none answers. HSMs that did not answer are tried
// again in the background (Config.ReconnectInterval, ReconnectAttempts).
func Dial(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Cluster{
		cfg:    cfg,
		log:    cfg.Logger,
		rand:   cfg.Rand,
		byNode: map[uint32]int{},
		fresh:  newFreshTable(cfg.FreshObjectWindow, freshLimit, cfg.Now),
		born:   time.Now(),
	}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.refreshNow = make(chan struct{}, 1)
	var members []*member
	for i, addr := range cfg.HSMs {
		m, err := c.newMember(i, addr)
		if err != nil {
			for _, m := range members {
				m.conn.Close()
			}
			c.cancel()
			return nil, err
		}
		members = append(members, m)
		c.all.Store(c.all.Load() | m.bit())
	}
	c.slots.Store(&members)

	// First contact, with every HSM at once.
	errs := make([]error, len(members))
	ready := make([]bool, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { ready[i], errs[i] = c.probe(ctx, m) })
	}
	wg.Wait()
	var reachable, up int
	for i, m := range members {
		if errs[i] == nil {
			reachable++
			if ready[i] {
				m.markUp()
				up++
			}
		}
	}
	if up == 0 && reachable > 0 {
		// No HSM has caught up with its peers yet: better them than nothing.
		c.log.Warn("no HSM reports ready; using the reachable ones")
		for i, m := range members {
			if errs[i] == nil {
				m.markUp()
			}
		}
	}
	if reachable == 0 {
		c.closeConns()
		return nil, fmt.Errorf("client: dial: %w: %w", ErrNoHSM, errors.Join(errs...))
	}
	for i, m := range members {
		if !m.up.Load() {
			c.log.Warn("HSM down at start", "hsm", m.addr, "err", errs[i])
		}
	}

	c.loop.Go(c.reconnectLoop)
	c.loop.Go(c.watchLoop)
	c.loop.Go(c.membershipLoop)
	return c, nil
}

// newMember makes member idx, not yet connected, for the HSM at addr.
func (c *Cluster) newMember(idx int, addr string) (*member, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("client: HSM %s: %w", addr, err)
	}
	tlsCfg, err := c.cfg.TLS(host)
	if err != nil {
		return nil, fmt.Errorf("client: HSM %s: TLS: %w", addr, err)
	}
	creds := credentials.NewTLS(tlsCfg)
	// passthrough: one address, dialled (and resolved) at each
	// connection attempt; the backoff is capped so that gRPC's own
	// reconnection never lags far behind ours.
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: c.cfg.ReconnectInterval},
			MinConnectTimeout: c.cfg.RequestTimeout,
		}))
	if err != nil {
		return nil, fmt.Errorf("client: HSM %s: %w", addr, err)
	}
	m := &member{idx: idx, addr: addr, conn: conn, rpc: hsmv1.NewHSMClient(conn)}
	if !c.cfg.Unbatched {
		m.batch = newBatcher(m)
	}
	m.life.Store(newMemberLife(c.ctx))
	return m, nil
}

// live returns the members that have not left the cluster.
func (c *Cluster) live() []*member {
	all := *c.slots.Load()
	out := make([]*member, 0, len(all))
	for _, m := range all {
		if !m.removed.Load() {
			out = append(out, m)
		}
	}
	return out
}

// nslots is the number of member indexes used so far: a bound for slices
// indexed by member index.
func (c *Cluster) nslots() int { return len(*c.slots.Load()) }

// Close stops reconnecting, waits for that goroutine and closes the
// connections. Sessions still open are left to the HSMs' idle timeout.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.loop.Wait()
		c.closeErr = c.closeConns()
	})
	return c.closeErr
}

func (c *Cluster) closeConns() error {
	c.cancel()
	c.memMu.Lock() // no member is added or removed from now on
	defer c.memMu.Unlock()
	var errs []error
	for _, m := range c.live() {
		if err := m.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("client: close HSM %s: %w", m.addr, err))
		}
	}
	return errors.Join(errs...)
}

// closed reports whether Close was called.
func (c *Cluster) closed() bool { return c.ctx.Err() != nil }

// probe connects to m and asks for its NodeInfo, within RequestTimeout. It
// reports whether m is ready (caught up with its peers); err is nil whenever
// m answered.
func (c *Cluster) probe(ctx context.Context, m *member) (ready bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if err := connect(ctx, m.conn); err != nil {
		return false, err
	}
	info, err := m.rpc.NodeInfo(ctx, &hsmv1.Empty{})
	if err != nil {
		if r := refusal(m.addr, err); r != nil {
			return false, nil // it is there, and refuses to describe itself
		}
		return false, err
	}
	c.setNodeID(m, info.GetNodeId())
	return info.GetReady(), nil
}

// connect makes conn try to connect now (not when gRPC's backoff says) and
// waits until it is ready, the attempt failed, or ctx ends.
func connect(ctx context.Context, conn *grpc.ClientConn) error {
	conn.ResetConnectBackoff()
	conn.Connect()
	tried := false
	for {
		st := conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.Connecting:
			tried = true
		case connectivity.TransientFailure:
			if tried {
				return errors.New("connection failed")
			}
		case connectivity.Shutdown:
			return ErrClosed
		}
		if !conn.WaitForStateChange(ctx, st) {
			return fmt.Errorf("connect: %w", context.Cause(ctx))
		}
	}
}

func (c *Cluster) setNodeID(m *member, id uint32) {
	if id == 0 || m.nodeID.Load() == id {
		return
	}
	c.idMu.Lock()
	defer c.idMu.Unlock()
	if old := m.nodeID.Swap(id); old != 0 && c.byNode[old] == m.idx {
		delete(c.byNode, old)
	}
	c.byNode[id] = m.idx
}

// maskOf maps node ids (stored_on) to a routing mask.
func (c *Cluster) maskOf(ids []uint32) uint64 {
	c.idMu.RLock()
	defer c.idMu.RUnlock()
	var mask uint64
	for _, id := range ids {
		if i, ok := c.byNode[id]; ok {
			mask |= 1 << i
		}
	}
	return mask
}

func (m *member) markUp() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.removed.Load() {
		return // it left the cluster while a probe was in flight
	}
	if old := m.life.Load(); old.ctx.Err() != nil {
		m.life.Store(newMemberLife(old.parent))
	}
	m.up.Store(true)
	m.attempts, m.gaveUp = 0, false
}

// markDown takes m out of routing after a transport failure seen in epoch:
// a failure of a request that started before m was last reconnected is
// stale and ignored.
func (c *Cluster) markDown(m *member, epoch uint64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.up.Load() || m.epoch.Load() != epoch || c.closed() {
		return
	}
	m.up.Store(false)
	m.epoch.Add(1)
	m.life.Load().cancel(err) // its requests in flight fail now, and go elsewhere if they may
	m.attempts, m.gaveUp = 0, false
	c.log.Warn("HSM down", "hsm", m.addr, "err", err)
	select { // it may have left the cluster, or others joined
	case c.refreshNow <- struct{}{}:
	default:
	}
}

// claimAttempt reports whether the reconnect loop should probe m now, and
// counts the attempt.
func (c *Cluster) claimAttempt(m *member) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.up.Load() || m.gaveUp || m.removed.Load() {
		return false
	}
	if limit := c.cfg.ReconnectAttempts; limit != ReconnectForever && m.attempts >= limit {
		m.gaveUp = true
		c.log.Error("HSM given up: reconnect attempts exhausted; dial the cluster again to use it",
			"hsm", m.addr, "attempts", m.attempts)
		return false
	}
	m.attempts++
	return true
}

// reconnectLoop probes the down HSMs every ReconnectInterval until Close.
func (c *Cluster) reconnectLoop() {
	t := time.NewTicker(c.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, m := range c.live() {
			if c.claimAttempt(m) {
				wg.Go(func() { c.reconnect(m) })
			}
		}
		wg.Wait()
		c.rounds.Add(1)
	}
}

func (c *Cluster) reconnect(m *member) {
	if !m.reconnecting.CompareAndSwap(false, true) {
		return
	}
	defer m.reconnecting.Store(false)
	m.probes.Add(1)
	ready, err := c.probe(c.ctx, m)
	switch {
	case err != nil:
		c.log.Debug("HSM still down", "hsm", m.addr, "err", err)
	case !ready:
		m.mu.Lock()
		m.attempts-- // it answered: waiting for it to catch up is not a failed attempt
		m.mu.Unlock()
		c.log.Info("HSM answers but is not ready yet", "hsm", m.addr)
	default:
		m.markUp()
		c.log.Info("HSM back", "hsm", m.addr, "node", m.nodeID.Load())
	}
}

// pick returns the member of allowed that is up with the fewest outstanding
// requests, ties broken at random, or nil.
func (c *Cluster) pick(allowed uint64) *member {
	var best *member
	var bestN int64
	ties := 0
	for _, m := range *c.slots.Load() { // a member that left is never up
		if allowed&m.bit() == 0 || !m.up.Load() {
			continue
		}
		n := m.outstanding.Load()
		switch {
		case best == nil || n < bestN:
			best, bestN, ties = m, n, 1
		case n == bestN:
			ties++
			if c.randN(ties) == 0 {
				best = m
			}
		}
	}
	return best
}

func (c *Cluster) randN(n int) int {
	c.randMu.Lock()
	defer c.randMu.Unlock()
	return c.rand.IntN(n)
}

// ClusterInfo asks every HSM for its NodeInfo, at once.
func (c *Cluster) ClusterInfo(ctx context.Context) []HSMStatus {
	members := c.live()
	out := make([]HSMStatus, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			out[i] = HSMStatus{Address: m.addr, Up: m.up.Load()}
			ctx := ctx
			if out[i].Up { // watched: a silent HSM is reported after SilenceTimeout
				c.busy(m)
				defer c.idle(m)
				var stop context.CancelFunc
				ctx, stop = m.bound(ctx)
				defer stop()
			}
			rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
			defer cancel()
			r, err := m.rpc.NodeInfo(rctx, &hsmv1.Empty{})
			c.heardFrom(m, err)
			if err != nil {
				if e := refusal(m.addr, err); e != nil {
					err = e
				}
				out[i].Err = fmt.Errorf("client: node info of HSM %s: %w", m.addr, err)
				return
			}
			c.setNodeID(m, r.GetNodeId())
			out[i].Info = fromNodeInfo(r)
		})
	}
	wg.Wait()
	return out
}

// Mechanisms lists the mechanisms of an HSM of the cluster (they all run the
// same version in a healthy cluster).
func (c *Cluster) Mechanisms(ctx context.Context) ([]MechanismInfo, error) {
	var resp *hsmv1.MechanismsResponse
	_, err := c.invoke(ctx, nil, call{op: "mechanisms", retry: true}, func(ctx context.Context, m *member, _ uint64) (err error) {
		resp, err = m.rpc.Mechanisms(ctx, &hsmv1.Empty{})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]MechanismInfo, len(resp.GetMechanisms()))
	for i, mi := range resp.GetMechanisms() {
		out[i] = MechanismInfo{
			Type: ck.MechanismType(mi.GetType()), MinKeySize: uint(mi.GetMinKeySize()),
			MaxKeySize: uint(mi.GetMaxKeySize()), Flags: ck.Flags(mi.GetFlags()),
			KeyType: ck.KeyType(mi.GetKeyType()), KeyUse: KeyUse(mi.GetKeyUse()),
		}
	}
	return out, nil
}
