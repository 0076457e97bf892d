package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
)

// Files in Config.DataDir.
const (
	StoreFile = "hsm.db"
	// (A restore builds the data dir as DataDir + ".restoring" first.)
	NodeKeyFile = "node.key"
	AuditFile   = "audit.log"
)

// ErrOtherCluster means the node's store holds a different masking key than
// its peers: it belongs to another cluster and must not join this one.
var ErrOtherCluster = errors.New("masking key of another cluster")

// Node is one HSM on the network. New prepares it, Run serves until its
// context ends; Close releases what New opened when Run is never called.
type Node struct {
	cfg       Config
	log       *slog.Logger
	store     *store.Store
	audit     *audit.Log
	ln        net.Listener
	srv       *grpc.Server
	httpLn    net.Listener
	httpSrv   *http.Server
	metrics   *metrics
	sessions  *sessions
	logins    *loginLimiter
	strangers strangerGate // spaces strangers' catch-ups (catchup.go)
	peers     []*peerClient
	verified  verifiedClients // client certificate chains verified under the current mTLS policy
	links     links           // replication links: clients and state (link.go)

	// loadMu is held to load the device and read-held to reload a record a
	// peer delivered (onApply), so no record is missed in between. (peersync
	// orders the reloads of one key.)
	loadMu sync.RWMutex
	dev    atomic.Pointer[hsm.Device]      // nil until the device is loaded
	syncer atomic.Pointer[peersync.Syncer] // nil until Run starts it

	// mkMu guards mk: a copy of the masking key, kept when this process
	// created or cloned it, to hand to joining peers (Clone).
	mkMu sync.Mutex
	mk   []byte

	// cloneMu serializes Clone handlers: the joined check and the joined
	// record of one handout happen together.
	cloneMu sync.Mutex

	started   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New opens the node's store, audit log and device, binds its listeners
// and, for MasterKeyCreate, creates the masking key. A node that must clone
// its masking key, or catch up with peers before its device may load, does
// so in Run.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cb := cryptobackend.Current(); cfg.Device.FIPS && !cb.FIPSModeReady() {
		return nil, fmt.Errorf("%w (this process runs crypto %s)", ErrNoFIPSModule, cb)
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg: cfg,
		log: cfg.Logger.With("node", cfg.NodeID),
		sessions: newSessions(cfg.SessionIdleTimeout, cfg.Limits.AnonymousSessionTimeout, cfg.MaxSessions,
			quotasOf(cfg.Limits, cfg.MaxSessions), cfg.Now),
		logins: newLoginLimiter(cfg.Limits, cfg.Now),
		ln:     cfg.Listener, // owned by the node from here on, closed by Close
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	restored := false
	if cfg.MasterKey == MasterKeyRestore {
		if restored, err = n.restoreStore(ctx); err != nil {
			return nil, err
		}
	}
	if err := n.openFiles(ctx); err != nil {
		return nil, err
	}
	if err := n.initMaskingKey(ctx); err != nil {
		return nil, err
	}
	if restored {
		ev := audit.Event{Op: "cluster.mk-restore", Target: cfg.RestoreBackupID, Result: "ok"}
		if err := n.audit.AppendSync(ctx, ev); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	if n.store.HasMaskingKey() {
		users, err := n.countRecords(ctx, store.KindUser)
		if err != nil {
			return nil, err
		}
		// A joining node loads its device only after catching up: on an
		// empty store the device would make a pre-admin, whose newer
		// version would then replace the cluster's real admin everywhere.
		// A restored node is the first of its cluster, as a creating one.
		if cfg.MasterKey == MasterKeyCreate || cfg.MasterKey == MasterKeyRestore || users > 0 {
			if err := n.loadDevice(ctx); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range cfg.Peers {
		pc, err := newPeerClient(cfg.NodeID, p, cfg.PeerTLS)
		if err != nil {
			return nil, err
		}
		n.peers = append(n.peers, pc)
	}
	n.metrics = newMetrics(n)
	if err := n.listen(); err != nil {
		return nil, err
	}
	return n, nil
}

// openFiles opens (creating on first start) the node key, store and audit log.
func (n *Node) openFiles(ctx context.Context) error {
	dir := n.cfg.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: data dir: %w", err)
	}
	keyPath, dbPath := filepath.Join(dir, NodeKeyFile), filepath.Join(dir, StoreFile)
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(dbPath); err == nil {
			return fmt.Errorf("node: data dir %s has a store but no node key %s: restore the key file; a new one cannot open the store", dir, NodeKeyFile)
		}
		if err := store.CreateNodeKey(keyPath); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	st, err := store.Open(ctx, store.Config{
		Path: dbPath, NodeKeyPath: keyPath, Node: n.cfg.NodeID, Now: n.cfg.Now, Logger: n.log,
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.store = st
	key, anchor, err := auditTrust(st)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer clear(key)
	lg, err := audit.Open(ctx, audit.Config{
		Path: filepath.Join(dir, AuditFile), Logger: n.log, Now: n.cfg.Now,
		Key: key, Anchor: anchor, OnDurable: n.keepAuditAnchor,
	})
	if err != nil {
		return fmt.Errorf("node: audit log (rewritten, cut or not this node's?): %w", err)
	}
	n.audit = lg
	return nil
}

// initMaskingKey applies Config.MasterKey to a store that may already hold
// a masking key.
func (n *Node) initMaskingKey(ctx context.Context) error {
	has := n.store.HasMaskingKey()
	switch {
	case has:
		n.log.Info("store holds a masking key", "source", n.cfg.MasterKey)
		return nil
	case n.cfg.MasterKey == MasterKeyExisting, n.cfg.MasterKey == MasterKeyRestore:
		return fmt.Errorf("node: data dir %s holds no masking key: start the first node with create (or restore), others with clone", n.cfg.DataDir)
	case n.cfg.MasterKey == MasterKeyClone:
		// Run fetches it from a peer. A node that has its key already
		// restarts as clone without peers: the last HSM left of a cluster.
		if len(n.cfg.Peers) == 0 {
			return fmt.Errorf("node: data dir %s holds no masking key and the node has no peer to clone it from", n.cfg.DataDir)
		}
		return nil
	}
	mk := make([]byte, 32)
	defer clear(mk)
	if _, err := rand.Read(mk); err != nil {
		return fmt.Errorf("node: masking key: %w", err)
	}
	if err := n.setMaskingKey(ctx, mk); err != nil {
		return err
	}
	n.log.Info("created the cluster masking key")
	return n.audit.AppendSync(ctx, audit.Event{Op: "cluster.mk-create", Result: "ok"})
}

// setMaskingKey stores mk and keeps a copy to serve Clone.
func (n *Node) setMaskingKey(ctx context.Context, mk []byte) error {
	if err := n.store.SetMaskingKey(ctx, mk); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.mkMu.Lock()
	n.mk = append([]byte(nil), mk...)
	n.mkMu.Unlock()
	// The audit chain is keyed from here on.
	key, err := audit.DeriveKey(mk)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer clear(key)
	if err := n.audit.SetKey(key); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// maskingKey returns a copy of the masking key for Clone. The store lends it
// if it can (a MaskingKey method); otherwise only a key this process created
// or cloned is available.
func (n *Node) maskingKey() ([]byte, error) {
	if s, ok := any(n.store).(interface{ MaskingKey() ([]byte, error) }); ok {
		return s.MaskingKey()
	}
	n.mkMu.Lock()
	defer n.mkMu.Unlock()
	if n.mk == nil {
		return nil, errors.New("this node's store does not lend its masking key to this process; clone from the node that created or cloned it since it started")
	}
	return append([]byte(nil), n.mk...), nil
}

// loadDevice opens the device over the store.
func (n *Node) loadDevice(ctx context.Context) error {
	n.loadMu.Lock()
	defer n.loadMu.Unlock()
	dc := n.cfg.Device
	dev, err := hsm.New(ctx, hsm.Config{
		Store: deviceStore{n}, Audit: n.audit, Logger: n.log, Now: n.cfg.Now,
		FIPS: dc.FIPS, Password: dc.Password, MaxLoginFailures: dc.MaxLoginFailures,
		MaxObjects: dc.MaxObjects, QuorumTokenTTL: dc.QuorumTokenTTL,
	})
	if err != nil {
		return fmt.Errorf("node: device: %w", err)
	}
	n.dev.Store(dev)
	n.log.Info("device loaded")
	return nil
}

// countRecords counts live records of one kind, from their metadata only.
func (n *Node) countRecords(ctx context.Context, kind store.Kind) (int, error) {
	count := 0
	err := n.store.Versions(ctx, func(k store.Kind, _ string, _ store.Version, tombstone bool) error {
		if k == kind && !tombstone {
			count++
		}
		return nil
	})
	return count, err
}

// listen binds the gRPC and metrics listeners and builds the servers.
func (n *Node) listen() error {
	if n.ln == nil {
		ln, err := net.Listen("tcp", n.cfg.Listen)
		if err != nil {
			return fmt.Errorf("node: listen: %w", err)
		}
		n.ln = ln
	}
	n.ln = newConnLimiter(n.ln, n.cfg.Limits.MaxConnectionsPerAddress, func(a addrKey) {
		n.log.Warn("refused connections: client address has too many open", "client", a, "limit", n.cfg.Limits.MaxConnectionsPerAddress)
	})
	n.srv = n.newGRPCServer()
	if n.cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", n.cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("node: metrics listen: %w", err)
		}
		n.httpLn = ln
		n.httpSrv = &http.Server{Handler: n.metrics.handler(), ReadHeaderTimeout: 5 * time.Second}
	}
	return nil
}

// Addr is the address the gRPC server is bound to.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// MetricsAddr is the address of the HTTP endpoints, "" if none.
func (n *Node) MetricsAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// Ready reports whether the device is loaded and peersync has caught up.
func (n *Node) Ready() bool { return n.notReady() == "" }

// notReady says why the node is not ready, "" if it is.
func (n *Node) notReady() string {
	switch s := n.syncer.Load(); {
	case n.dev.Load() == nil:
		return "device not loaded (joining the cluster)"
	case s == nil:
		return "synchronization not started"
	case !s.Ready():
		return "catching up with peers"
	}
	return ""
}

// syncState is what peersync knows of each peer, both ways: how far the
// peer is behind this node (lag, queued) and this node behind it (behind).
// Empty before peersync runs.
type syncState struct {
	lag    map[uint32]time.Duration
	queued map[uint32]int
	behind map[uint32]peersync.Behind
}

func (n *Node) syncState() syncState {
	if s := n.syncer.Load(); s != nil {
		return syncState{lag: s.Lag(), queued: s.Queued(), behind: s.Behind()}
	}
	return syncState{}
}

// Run serves until ctx ends or serving fails, then stops gracefully and
// closes the node. It returns nil after an orderly stop; a node whose store
// belongs to another cluster gets an error wrapping ErrOtherCluster.
func (n *Node) Run(ctx context.Context) error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("node: Run called twice")
	}
	defer n.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	errc := make(chan error, 8)
	spawn := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- fmt.Errorf("node: %s: %w", name, err)
			}
		}()
	}
	spawn("grpc", func() error { return n.srv.Serve(n.ln) })
	if n.httpSrv != nil {
		spawn("metrics", func() error {
			if err := n.httpSrv.Serve(n.httpLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	spawn("sessions", func() error { return n.reapLoop(ctx) })
	spawn("join", func() error { return n.join(ctx, spawn) })
	cb := cryptobackend.Current()
	n.log.Info("serving", "addr", n.Addr(), "metrics", n.MetricsAddr(), "version", n.cfg.Version,
		"crypto_backend", cb.Name, "fips140", cb.FIPS140, "fips_module", cb.Module(), "fips_mode", n.cfg.Device.FIPS)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		n.log.Error("stopping", "err", err)
	}
	cancel()
	n.stopServers()
	wg.Wait()
	if dev := n.dev.Load(); dev != nil {
		n.sessions.closeAll(dev)
	}
	n.log.Info("stopped")
	return err
}

// join makes the node a working member of its cluster: it clones the
// masking key if it has none, checks every reachable peer holds the same
// one, starts peersync and, for a joining node, loads the device once it
// has caught up.
func (n *Node) join(ctx context.Context, spawn func(string, func() error)) error {
	if !n.store.HasMaskingKey() {
		if err := n.cloneMaskingKey(ctx); err != nil {
			return ignoreCanceled(ctx, err)
		}
	}
	if err := n.checkPeers(ctx); err != nil {
		return ignoreCanceled(ctx, err)
	}
	var peers []peersync.Peer
	for _, p := range n.peers {
		peers = append(peers, p)
	}
	s, err := peersync.New(peersync.Config{
		Self: n.cfg.NodeID, Store: n.store, Peers: peers, OnApply: n.onApply,
		Interval: n.cfg.SyncInterval, Now: n.cfg.Now, Logger: n.cfg.Logger,
	})
	if err != nil {
		return err
	}
	n.syncer.Store(s)
	spawn("peersync", func() error { return s.Run(ctx) })
	spawn("replication links", func() error { return n.linkLoop(ctx) })
	if n.dev.Load() != nil {
		return ignoreCanceled(ctx, n.markSelfJoined(ctx))
	}
	if err := s.WaitReady(ctx); err != nil {
		return ignoreCanceled(ctx, err)
	}
	// Caught up, so the final record is newer than the one the serving
	// node wrote.
	if err := n.markSelfJoined(ctx); err != nil {
		return ignoreCanceled(ctx, err)
	}
	// A joining node loads its device only with the cluster's users: with
	// none it would make a pre-admin over the cluster's admin. The first
	// round may have reached no peer (a loaded machine, a peer restarting):
	// sync again until one answers; the node stays not ready meanwhile.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		users, err := n.countRecords(ctx, store.KindUser)
		if err != nil {
			return ignoreCanceled(ctx, err)
		}
		if users > 0 {
			break
		}
		n.log.Warn("joined, but no peer has delivered the cluster's users yet; syncing again", "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		if err := s.SyncNow(ctx); err != nil {
			n.log.Debug("anti-entropy while joining", "err", err)
		}
	}
	return ignoreCanceled(ctx, n.loadDevice(ctx))
}

// ignoreCanceled drops an error caused by the node stopping.
func ignoreCanceled(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// stopServers stops accepting work: gRPC gracefully within
// ShutdownTimeout, then forcibly; the HTTP server likewise.
func (n *Node) stopServers() {
	done := make(chan struct{})
	go func() {
		n.srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(n.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		n.log.Warn("graceful stop timed out; closing connections", "timeout", n.cfg.ShutdownTimeout)
		n.srv.Stop()
		<-done
	}
	if n.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
		defer cancel()
		if err := n.httpSrv.Shutdown(ctx); err != nil {
			n.httpSrv.Close()
		}
	}
}

// Close releases what New opened: peer connections, listeners, the audit
// log and the store. Run calls it; call it yourself only when Run is never
// called. Later calls return the first result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.srv != nil && !n.started.Load() {
			n.srv.Stop() // never served: just release the listener
		}
		if n.ln != nil {
			n.ln.Close() // the node owns it, even a Config.Listener; closed already if it served
		}
		if n.httpLn != nil && !n.started.Load() {
			n.httpLn.Close()
		}
		for _, p := range n.peers {
			p.close()
		}
		if n.audit != nil {
			if err := n.audit.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		n.mkMu.Lock()
		clear(n.mk)
		n.mk = nil
		n.mkMu.Unlock()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
