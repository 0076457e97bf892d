package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"
)

// Defaults of Config.
const (
	DefaultReconnectInterval = 5 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultFreshObjectWindow = 30 * time.Second
	DefaultSilenceTimeout    = time.Second
	DefaultMembershipRefresh = 30 * time.Second

	// ReconnectForever is the ReconnectAttempts of seed 003's default: retry a
	// down HSM for as long as the Cluster lives.
	ReconnectForever = -1

	maxHSMs = 64 // routing masks are uint64
)

// Config is what a Cluster needs. The zero values of the durations and of
// CreateObjectMinimumNodes mean their defaults; ReconnectAttempts has no
// hidden default because its zero means "never" (seed 003): set it to
// ReconnectForever for auto-recovery.
type Config struct {
	// HSMs are the host:port of every HSM of the cluster.
	HSMs []string
	// TLS returns the configuration for the HSM at host (its IP address or
	// DNS name, without port), verifying its certificate against the
	// customer's trust anchor and that address. Required.
	TLS func(host string) (*tls.Config, error)

	// CreateObjectMinimumNodes is how many HSMs must hold a new token object
	// before a creation succeeds (default 1). A call's MinNodes option can
	// raise it, never lower it.
	CreateObjectMinimumNodes int

	// ReconnectInterval is the time between two attempts to reach a down HSM
	// (default 5s).
	ReconnectInterval time.Duration
	// ReconnectAttempts is how many attempts are made before a down HSM is
	// given up until the Cluster is dialled again: -1 (ReconnectForever)
	// forever, 0 never.
	ReconnectAttempts int

	// RequestTimeout bounds one attempt of one request on one HSM (default
	// 10s); an HSM that does not answer in time is marked down.
	RequestTimeout time.Duration

	// SilenceTimeout is how long an HSM with requests in flight may answer
	// nothing, not even a liveness probe (sent after half of it), before it
	// is taken as down (default 1s): its requests in flight are cancelled
	// and those safe to resend go to another HSM. It tells a stopped or
	// cut-off HSM from a busy one, which answers the probe; RequestTimeout
	// still bounds a request that an answering HSM never finishes.
	SilenceTimeout time.Duration

	// FreshObjectWindow is how long operations on a token object created
	// through this client are routed only to the HSMs known to hold it
	// (default 30s).
	FreshObjectWindow time.Duration

	// MembershipInterval, if positive, is how often the Cluster asks an
	// HSM it is connected to for the cluster's current HSMs, to dial those
	// that joined and drop those that left (also soon after an HSM goes
	// down, at most once a second). Zero: never, the HSMs stay those of
	// HSMs. A configuration file's Config sets DefaultMembershipRefresh.
	MembershipInterval time.Duration

	// Unbatched sends every request as its own RPC. By default the
	// single-part operations (encrypt, decrypt, sign, verify, digest) to
	// one HSM share a Batch stream, those waiting at the same time going
	// in one message; an HSM that does not serve Batch is sent RPCs.
	Unbatched bool

	Logger *slog.Logger // default: discard

	// For tests: the clock and the source of jitter and tie-breaking.
	Now  func() time.Time
	Rand *rand.Rand
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if len(c.HSMs) == 0 {
		return errors.New("client: config: no HSM addresses")
	}
	if len(c.HSMs) > maxHSMs {
		return fmt.Errorf("client: config: %d HSMs, at most %d", len(c.HSMs), maxHSMs)
	}
	seen := make(map[string]bool, len(c.HSMs))
	for _, a := range c.HSMs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("client: config: HSM address %q: %w", a, err)
		}
		if seen[a] {
			return fmt.Errorf("client: config: HSM address %q listed twice", a)
		}
		seen[a] = true
	}
	if c.TLS == nil {
		return errors.New("client: config: no TLS configuration")
	}
	if c.CreateObjectMinimumNodes < 0 || c.CreateObjectMinimumNodes > len(c.HSMs) {
		return fmt.Errorf("client: config: create_object_minimum_nodes %d, want 1..%d (the number of HSMs)",
			c.CreateObjectMinimumNodes, len(c.HSMs))
	}
	if c.ReconnectAttempts < ReconnectForever {
		return fmt.Errorf("client: config: reconnect attempts %d, want -1 (forever), 0 (never) or more", c.ReconnectAttempts)
	}
	if c.ReconnectInterval < 0 || c.RequestTimeout < 0 || c.FreshObjectWindow < 0 || c.SilenceTimeout < 0 || c.MembershipInterval < 0 {
		return errors.New("client: config: negative duration")
	}
	return nil
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	c.HSMs = append([]string(nil), c.HSMs...)
	if c.CreateObjectMinimumNodes == 0 {
		c.CreateObjectMinimumNodes = 1
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = DefaultReconnectInterval
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.SilenceTimeout == 0 {
		c.SilenceTimeout = DefaultSilenceTimeout
	}
	if c.FreshObjectWindow == 0 {
		c.FreshObjectWindow = DefaultFreshObjectWindow
	}

	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return c
}
