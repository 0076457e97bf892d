package peersync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-hsm/coffer/internal/store"
)

// Defaults for the zero values of Config.
const (
	DefaultInterval     = 2 * time.Second
	DefaultBuckets      = 256
	DefaultTombstoneTTL = time.Hour
)

// Limits on requests, on both the serving and the calling side.
const (
	MaxBuckets    = 1 << 16 // digest buckets
	MaxBatch      = 1024    // records per Push or keys per Fetch that this syncer sends
	MaxBatchBytes = 2 << 20 // bytes of sealed records per Push or Fetch reply (a single larger record still goes alone)
	maxServeBatch = 4096    // records per HandlePush, keys per HandleFetch
)

const (
	defaultQueueLimit  = 1 << 18          // pending keys per peer before the queue is dropped (minutes of creation at full rate)
	defaultPeerTimeout = 30 * time.Second // one call to a peer
	versionsChunk      = 128              // buckets per Versions call
	fetchPipeline      = 3                // Fetch calls in flight to one peer
)

// Errors callers compare with errors.Is.
var (
	// ErrTooFewPeers: Replicate could not store the record on as many peers
	// as asked. The error also wraps ctx.Err() when the context ended first.
	ErrTooFewPeers = errors.New("peersync: too few peers stored the record")
	// ErrInvalidRequest: a peer's request is out of bounds (bucket count,
	// bucket index, batch size, key).
	ErrInvalidRequest = errors.New("peersync: invalid request")
	// ErrRunning: Run was called a second time.
	ErrRunning = errors.New("peersync: Run already called")
)

// Key names a record.
type Key struct {
	Kind store.Kind
	ID   string
}

func (k Key) String() string { return fmt.Sprintf("%s %q", k.Kind, k.ID) }

func (k Key) valid() bool { return k.Kind.Valid() && len(k.ID) > 0 && len(k.ID) <= store.MaxIDLen }

// compare orders keys by kind, then id (bytewise), as the store lists them.
func (k Key) compare(o Key) int {
	switch {
	case k.Kind != o.Kind:
		return int(k.Kind) - int(o.Kind)
	case k.ID < o.ID:
		return -1
	case k.ID > o.ID:
		return 1
	}
	return 0
}

// Meta is a record's metadata, as anti-entropy compares it.
type Meta struct {
	Key
	Version   store.Version
	Tombstone bool
}

// Store is the part of *store.Store the syncer uses.
type Store interface {
	Export(ctx context.Context, kind store.Kind, id string) (store.Sealed, error)
	Apply(ctx context.Context, rec store.Sealed) (bool, error)
	Versions(ctx context.Context, fn func(kind store.Kind, id string, v store.Version, tombstone bool) error) error
	PurgeTombstone(ctx context.Context, kind store.Kind, id string, v store.Version) error
}

// Peer is one remote node: over gRPC in production (internal/node
// implements it), in memory in tests (package memnet). Every method returns
// promptly once ctx ends. Push reports success (nil error) when the peer now
// holds every record at its version or a newer one; applied counts the
// records it actually stored.
type Peer interface {
	ID() uint32
	Push(ctx context.Context, recs []store.Sealed) (applied int, err error)
	Digest(ctx context.Context, buckets int) ([][]byte, error)
	Versions(ctx context.Context, buckets int, which []int) ([]Meta, error)
	Fetch(ctx context.Context, keys []Key) ([]store.Sealed, error)
	// CatchUp asks the peer to push what it queued for this node now; see
	// Syncer.HandleCatchUp.
	CatchUp(ctx context.Context) (Backlog, error)
}

// Config configures a Syncer.
type Config struct {
	Self  uint32 // this node's id, nonzero
	Store Store
	Peers []Peer // every other node of the cluster; ids unique, none equal to Self
	// OnApply is called after a record from a peer was applied to the store
	// (so the device reloads it). Calls for one key never overlap and come
	// in the order the store applied them. Optional.
	OnApply      func(ctx context.Context, rec store.Sealed)
	Interval     time.Duration    // anti-entropy period; zero means DefaultInterval
	Buckets      int              // digest buckets, 1..MaxBuckets; zero means DefaultBuckets
	TombstoneTTL time.Duration    // purge a tombstone once every peer has it and it is older than this; zero means DefaultTombstoneTTL
	Now          func() time.Time // wall clock for lag and tombstone age; nil means time.Now
	Logger       *slog.Logger     // nil means discard
}

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	var errs []error
	if c.Self == 0 {
		errs = append(errs, errors.New("Self is zero"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("Store is nil"))
	}
	seen := make(map[uint32]bool, len(c.Peers))
	for i, p := range c.Peers {
		if p == nil {
			errs = append(errs, fmt.Errorf("Peers[%d] is nil", i))
			continue
		}
		switch id := p.ID(); {
		case id == 0:
			errs = append(errs, fmt.Errorf("Peers[%d] has id zero", i))
		case id == c.Self:
			errs = append(errs, fmt.Errorf("Peers[%d] has this node's id %d", i, id))
		case seen[id]:
			errs = append(errs, fmt.Errorf("Peers[%d]: id %d appears twice", i, id))
		default:
			seen[id] = true
		}
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("Interval %s is negative", c.Interval))
	}
	if c.Buckets < 0 || c.Buckets > MaxBuckets {
		errs = append(errs, fmt.Errorf("Buckets %d not in 0..%d", c.Buckets, MaxBuckets))
	}
	if c.TombstoneTTL < 0 {
		errs = append(errs, fmt.Errorf("TombstoneTTL %s is negative", c.TombstoneTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("peersync: invalid config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultBuckets
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = DefaultTombstoneTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Syncer synchronizes one node's store with its peers. Its serving methods
// (Handle*) and Notify, Replicate and Lag may be called before, during and
// after Run; the senders and anti-entropy run only while Run does.
type Syncer struct {
	cfg   Config
	log   *slog.Logger
	peers []*peerState

	// Tunables, fixed after New (tests change them before Run).
	queueLimit  int
	peerTimeout time.Duration

	started   atomic.Bool
	ready     chan struct{} // closed once the first round has ended
	readyOnce sync.Once
	roundMu   sync.Mutex // serializes anti-entropy rounds

	applyLocks keyLocks // per key, across Apply and OnApply

	barrierMu   sync.Mutex // guards the two below
	barrierNext *barrier   // the CatchUp run callers may still join
	barrierCur  *barrier   // the run going on, or the last one
}

// New returns a Syncer; call Run to start synchronizing.
func New(cfg Config) (*Syncer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Syncer{
		cfg:         cfg,
		log:         cfg.Logger.With("node", cfg.Self),
		queueLimit:  defaultQueueLimit,
		peerTimeout: defaultPeerTimeout,
		ready:       make(chan struct{}),
	}
	for _, p := range cfg.Peers {
		s.peers = append(s.peers, newPeerState(p))
	}
	return s, nil
}

// Run synchronizes until ctx ends: one sender and one prober (see
// probeLoop) per peer, and anti-entropy rounds every Interval, the first at
// once. It returns nil once ctx has
// ended and every goroutine it started has stopped. Run may be called once.
func (s *Syncer) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	var wg sync.WaitGroup
	for _, ps := range s.peers {
		wg.Go(func() { s.sendLoop(ctx, ps) })
		wg.Go(func() { s.probeLoop(ctx, ps) })
	}
	wg.Go(func() { s.antiEntropyLoop(ctx) })
	wg.Wait()
	return nil
}

func (s *Syncer) antiEntropyLoop(ctx context.Context) {
	s.round(ctx)
	if ctx.Err() != nil {
		return // the round was cut short: not caught up
	}
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Info("peersync ready", "peers", len(s.peers))
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.round(ctx)
		}
	}
}

// Ready reports whether the first anti-entropy round after Run started has
// ended: it pulled from every peer that answered (there may be none).
func (s *Syncer) Ready() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// WaitReady blocks until Ready is true or ctx ends.
func (s *Syncer) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("peersync: wait ready: %w", ctx.Err())
	}
}

// SyncNow runs one anti-entropy round with every peer now (after any round
// in progress) and returns the peers' errors, joined: nil means this node
// pulled from every peer.
func (s *Syncer) SyncNow(ctx context.Context) error { return s.round(ctx) }

// Lag returns, per peer, the age of the oldest local change (Notify) that
// peer has not yet acknowledged; 0 when it has them all. After a queue
// overflow the age counts from the overflow until an anti-entropy round with
// that peer succeeds.
func (s *Syncer) Lag() map[uint32]time.Duration {
	now := s.cfg.Now()
	out := make(map[uint32]time.Duration, len(s.peers))
	for _, ps := range s.peers {
		var lag time.Duration
		if oldest, ok := ps.oldest(); ok {
			lag = max(now.Sub(oldest), 0)
		}
		out[ps.id] = lag
	}
	return out
}

// callCtx bounds one call to a peer.
func (s *Syncer) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.peerTimeout)
}
