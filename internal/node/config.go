package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/coffer-hsm/coffer/internal/hsm"
)

// MasterKeySource says where a node's masking key (MK) comes from.
type MasterKeySource uint8

const (
	// MasterKeyCreate is for the first node of a cluster: generate a new MK
	// if the store has none (a store that has one keeps it, so a restart
	// with the same settings works).
	MasterKeyCreate MasterKeySource = 1
	// MasterKeyClone fetches the MK from a peer (Peer.Clone) if the store
	// has none, then catches up with the cluster before serving clients.
	MasterKeyClone MasterKeySource = 2
	// MasterKeyExisting requires the store to hold the MK already.
	MasterKeyExisting MasterKeySource = 3
	// MasterKeyRestore is for the first node of a cluster made from a
	// backup: with no store yet, the node verifies the whole blob
	// (Config.RestoreBlob, bound to Config.RestoreBackupID, under the backup
	// key) and builds its store from it before anything else (restore.go);
	// a store that holds the MK already is used as MasterKeyExisting would.
	MasterKeyRestore MasterKeySource = 4
)

func (m MasterKeySource) String() string {
	switch m {
	case MasterKeyCreate:
		return "create"
	case MasterKeyClone:
		return "clone"
	case MasterKeyExisting:
		return "existing"
	case MasterKeyRestore:
		return "restore"
	}
	return fmt.Sprintf("MasterKeySource(%d)", uint8(m))
}

// ParseMasterKeySource reads "create", "clone", "existing" or "restore".
func ParseMasterKeySource(s string) (MasterKeySource, error) {
	for _, m := range []MasterKeySource{MasterKeyCreate, MasterKeyClone, MasterKeyExisting, MasterKeyRestore} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("node: unknown masking key source %q (want create, clone, existing or restore)", s)
}

// PeerAddr is another node of the cluster.
type PeerAddr struct {
	ID   uint32 // its node id
	Addr string // host:port of its gRPC listener
}

// DeviceConfig is what the node passes through to the device.
type DeviceConfig struct {
	FIPS             bool
	Password         hsm.PasswordCost // zero: hsm.DefaultPasswordCost
	MaxLoginFailures int              // zero: the device's default
	MaxObjects       int              // zero: the device's default
	QuorumTokenTTL   time.Duration    // zero: the device's default
}

// Defaults of Config.
const (
	DefaultSessionIdleTimeout = 10 * time.Minute
	DefaultMaxSessions        = 4096
	DefaultShutdownTimeout    = 5 * time.Second
	DefaultReplicateTimeout   = 5 * time.Second
	DefaultLinkInterval       = 5 * time.Second
)

// Config is how a Node is built. Flags and files are parsed by the caller.
type Config struct {
	// DataDir holds hsm.db (the store), node.key (0600) and audit.log.
	DataDir string
	// Listen is the gRPC address, e.g. 127.0.0.11:0; Addr reports what was
	// bound. Listener, if set, is used instead (already bound, e.g. by a
	// test that must know every node's address before starting any); the
	// node owns it from New on and closes it, even when New fails.
	Listen   string
	Listener net.Listener

	NodeID    uint32 // nonzero, unique in the cluster
	ClusterID string
	HSMID     string

	// ServerTLS is the server side of every connection, built by the caller.
	// It must request client certificates without verifying them itself
	// (ClientAuth tls.RequestClientCert) and verify node certificates in
	// VerifyConnection, accepting a connection without one, as
	// pki.NodeServerConfig does. The node raises MinVersion to TLS 1.3 (gRPC
	// adds "h2") and also admits client certificates issued by the
	// cluster's registered trust anchors (client mTLS); peer RPCs run
	// VerifyConnection again, so only a node certificate makes a peer.
	ServerTLS *tls.Config
	// PeerTLS returns the client side of node-to-node mutual TLS for the
	// peer at host (its IP address or DNS name, without port), so the peer's
	// certificate is checked against the address dialled.
	PeerTLS func(host string) (*tls.Config, error)
	Peers   []PeerAddr

	MasterKey MasterKeySource
	// AuthorizePeer tells which node of this cluster an incoming call comes
	// from (from its verified TLS client certificate), or refuses it. Peer
	// RPCs require it; HSM RPCs do not (their authorization is Login).
	AuthorizePeer func(ctx context.Context) (nodeID uint32, err error)

	// BackupKeyPath is the fleet backup key (32 bytes, mode 0600; see
	// internal/backup): what Backup seals the masking key under and what a
	// restore opens it with. A node without one refuses Backup.
	BackupKeyPath string
	// RestoreBlob and RestoreBackupID are the backup a MasterKeyRestore node
	// starts from: the blob's path and the backup id it must be bound to.
	RestoreBlob     string
	RestoreBackupID string
	// LinkTLS returns the client side of mutual TLS to an HSM of a linked
	// clone at host (IP address or DNS name, without port): this node's
	// certificate, and verification of the server's node certificate for
	// cluster clusterID, against anchor only, for serverAuth and host (as
	// pki.NodeClientConfig with pki.Trust{TrustAnchor: anchor, ClusterID:
	// clusterID}; `coffer hsm run` also accepts it under this node's own
	// cluster certificate, a clone of the same lineage). Nil: this node
	// runs no outbound replication link.
	LinkTLS func(host string, anchor *x509.Certificate, clusterID string) (*tls.Config, error)
	// VerifyLinkedNode checks a chain as TLS delivers it (leaf first) is a
	// node certificate of cluster clusterID chaining to anchor only, valid
	// for clientAuth (as pki.Trust.VerifyNode; `coffer hsm run` also
	// accepts this node's own cluster certificate). Nil: this node admits no
	// inbound replication link.
	VerifyLinkedNode func(chain []*x509.Certificate, anchor *x509.Certificate, clusterID string) error
	// LinkInterval is the period of outbound replication link rounds
	// (zero: DefaultLinkInterval).
	LinkInterval time.Duration

	// MetricsListen, if set, serves /healthz, /readyz and /metrics over HTTP;
	// it must be a loopback address.
	MetricsListen string

	// SessionIdleTimeout closes sessions unused that long (zero: default).
	SessionIdleTimeout time.Duration
	// MaxSessions bounds open client sessions (zero: default).
	MaxSessions int
	// ShutdownTimeout bounds the graceful stop of the gRPC server.
	ShutdownTimeout time.Duration
	// ReplicateTimeout bounds the wait for peers of a creation with
	// min_nodes > 1 (the client's deadline may end it sooner).
	ReplicateTimeout time.Duration
	// SyncInterval is the anti-entropy period (zero: peersync's default).
	SyncInterval time.Duration

	Device  DeviceConfig
	Logger  *slog.Logger
	Now     func() time.Time // zero: time.Now
	Version string           // reported by NodeInfo

	// Limits bounds what one connection and one client address may hold or
	// do before logging in (zero fields: defaults).
	Limits ClientLimits
}

// ClientLimits bounds what unauthenticated network clients can make the node
// spend. A client address is an IPv4 address or an IPv6 /64 (what one host
// is usually given). Zero fields take the defaults below.
type ClientLimits struct {
	// MaxConnectionsPerAddress bounds the open connections of one address;
	// a connection over it is closed before its TLS handshake.
	MaxConnectionsPerAddress int
	// MaxStreamsPerConnection is the HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS
	// of every connection: a client's further calls wait for a free stream.
	MaxStreamsPerConnection uint32

	// MaxSessionsPerConnection and MaxSessionsPerAddress bound open
	// sessions, logged in or not.
	MaxSessionsPerConnection int
	MaxSessionsPerAddress    int
	// MaxAnonymousSessionsPerConnection and MaxAnonymousSessionsPerAddress
	// bound sessions not logged in, opened on a connection that has no
	// logged-in session. Such sessions also never take the last quarter of
	// Config.MaxSessions, which is kept for connections with a logged-in
	// session.
	MaxAnonymousSessionsPerConnection int
	MaxAnonymousSessionsPerAddress    int
	// AnonymousSessionTimeout closes a session that has not logged in that
	// long after it was opened (or logged out), used or not.
	AnonymousSessionTimeout time.Duration

	// LoginRate and LoginBurst are a token bucket of logins per address (per
	// second, and how many at once).
	LoginRate  float64
	LoginBurst int
	// LoginWait is the longest a login queues for its turn (its address's
	// token, the end of its failure delay, the address's login in progress)
	// before it is refused with RESOURCE_EXHAUSTED / CKR_FUNCTION_FAILED.
	// A login never queues for more than half of its caller's deadline.
	LoginWait time.Duration
	// LoginFailureDelay is the pause an address must keep after a failed
	// login (a wrong password, an unknown or locked user); it is multiplied
	// by four at every further consecutive failure up to
	// LoginMaxFailureDelay, and a successful login from the address ends it.
	LoginFailureDelay    time.Duration
	LoginMaxFailureDelay time.Duration
	// LoginAddresses bounds the addresses whose login state is tracked;
	// when all are in use, new addresses share one state.
	LoginAddresses int
}

// Defaults of ClientLimits.
const (
	DefaultMaxConnectionsPerAddress          = 64
	DefaultMaxStreamsPerConnection           = 128
	DefaultMaxSessionsPerConnection          = 1024
	DefaultMaxSessionsPerAddress             = 2048
	DefaultMaxAnonymousSessionsPerConnection = 64
	DefaultMaxAnonymousSessionsPerAddress    = 256
	DefaultAnonymousSessionTimeout           = 10 * time.Second
	DefaultLoginRate                         = 10
	DefaultLoginBurst                        = 20
	DefaultLoginWait                         = 5 * time.Second
	DefaultLoginFailureDelay                 = 2 * time.Second
	DefaultLoginMaxFailureDelay              = 15 * time.Minute
	DefaultLoginAddresses                    = 16384
)

// validate reports negative settings.
func (l *ClientLimits) validate(add func(string, ...any)) {
	for name, v := range map[string]int64{
		"MaxConnectionsPerAddress": int64(l.MaxConnectionsPerAddress),
		"MaxSessionsPerConnection": int64(l.MaxSessionsPerConnection), "MaxSessionsPerAddress": int64(l.MaxSessionsPerAddress),
		"MaxAnonymousSessionsPerConnection": int64(l.MaxAnonymousSessionsPerConnection),
		"MaxAnonymousSessionsPerAddress":    int64(l.MaxAnonymousSessionsPerAddress),
		"AnonymousSessionTimeout":           int64(l.AnonymousSessionTimeout), "LoginBurst": int64(l.LoginBurst),
		"LoginWait": int64(l.LoginWait), "LoginFailureDelay": int64(l.LoginFailureDelay),
		"LoginMaxFailureDelay": int64(l.LoginMaxFailureDelay), "LoginAddresses": int64(l.LoginAddresses),
	} {
		if v < 0 {
			add("Limits.%s is negative", name)
		}
	}
	if l.LoginRate < 0 || l.LoginRate != l.LoginRate {
		add("Limits.LoginRate %v is not a rate", l.LoginRate)
	}
}

func (l ClientLimits) withDefaults() ClientLimits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxConnectionsPerAddress, DefaultMaxConnectionsPerAddress)
	def(&l.MaxSessionsPerConnection, DefaultMaxSessionsPerConnection)
	def(&l.MaxSessionsPerAddress, DefaultMaxSessionsPerAddress)
	def(&l.MaxAnonymousSessionsPerConnection, DefaultMaxAnonymousSessionsPerConnection)
	def(&l.MaxAnonymousSessionsPerAddress, DefaultMaxAnonymousSessionsPerAddress)
	def(&l.LoginBurst, DefaultLoginBurst)
	def(&l.LoginAddresses, DefaultLoginAddresses)
	if l.MaxStreamsPerConnection == 0 {
		l.MaxStreamsPerConnection = DefaultMaxStreamsPerConnection
	}
	if l.LoginRate == 0 {
		l.LoginRate = DefaultLoginRate
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&l.AnonymousSessionTimeout, DefaultAnonymousSessionTimeout}, {&l.LoginWait, DefaultLoginWait},
		{&l.LoginFailureDelay, DefaultLoginFailureDelay}, {&l.LoginMaxFailureDelay, DefaultLoginMaxFailureDelay},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	l.LoginMaxFailureDelay = max(l.LoginMaxFailureDelay, l.LoginFailureDelay)
	return l
}

// Validate reports every missing or inconsistent setting.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		add("DataDir is required")
	}
	if c.Listen == "" && c.Listener == nil {
		add("Listen (or Listener) is required")
	}
	if c.NodeID == 0 {
		add("NodeID must be nonzero")
	}
	if c.ClusterID == "" {
		add("ClusterID is required")
	}
	switch {
	case c.ServerTLS == nil:
		add("ServerTLS is required")
	case c.ServerTLS.ClientAuth != tls.RequestClientCert || c.ServerTLS.VerifyConnection == nil:
		add("ServerTLS must request client certificates (ClientAuth RequestClientCert) and verify node certificates in VerifyConnection")
	}
	if len(c.Peers) > 0 && c.PeerTLS == nil {
		add("PeerTLS is required when there are peers")
	}
	if c.AuthorizePeer == nil {
		add("AuthorizePeer is required")
	}
	seen := map[uint32]bool{}
	for _, p := range c.Peers {
		switch {
		case p.ID == 0:
			add("peer %q has node id 0", p.Addr)
		case p.ID == c.NodeID:
			add("peer %q has this node's own id %d", p.Addr, p.ID)
		case seen[p.ID]:
			add("peer id %d is listed twice", p.ID)
		}
		seen[p.ID] = true
		if p.Addr == "" {
			add("peer %d has no address", p.ID)
		}
	}
	switch c.MasterKey {
	case MasterKeyCreate, MasterKeyExisting:
	case MasterKeyRestore:
		if c.RestoreBlob == "" || c.RestoreBackupID == "" || c.BackupKeyPath == "" {
			add("MasterKey restore needs RestoreBlob, RestoreBackupID and BackupKeyPath")
		}
	case MasterKeyClone: // without peers only if the store has its key (initMaskingKey)
	default:
		add("MasterKey must be create, clone, existing or restore")
	}
	if c.MetricsListen != "" {
		if err := checkLoopback(c.MetricsListen); err != nil {
			add("MetricsListen: %v", err)
		}
	}
	for name, d := range map[string]time.Duration{
		"SessionIdleTimeout": c.SessionIdleTimeout, "ShutdownTimeout": c.ShutdownTimeout,
		"ReplicateTimeout": c.ReplicateTimeout, "SyncInterval": c.SyncInterval,
		"LinkInterval": c.LinkInterval,
	} {
		if d < 0 {
			add("%s %s is negative", name, d)
		}
	}
	if c.MaxSessions < 0 {
		add("MaxSessions %d is negative", c.MaxSessions)
	}
	c.Limits.validate(add)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node: invalid config: %w", err)
	}
	return nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", host)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SessionIdleTimeout == 0 {
		c.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ReplicateTimeout == 0 {
		c.ReplicateTimeout = DefaultReplicateTimeout
	}
	if c.LinkInterval == 0 {
		c.LinkInterval = DefaultLinkInterval
	}
	if c.Version == "" {
		c.Version = "devel"
	}
	c.Limits = c.Limits.withDefaults()
	return c
}
