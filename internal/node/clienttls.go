package node

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/coffer-hsm/coffer/internal/hsm"
)

// This file: client mutual TLS. The device holds the cluster's trust
// anchors for client certificates and the enforcement level
// (hsm.ClientTLSPolicy); the node applies them to connections.
//
//   - At the handshake, a certificate that Config.ServerTLS's
//     VerifyConnection refuses (it is not a node certificate of the cluster)
//     is still accepted if it chains to a registered trust anchor: a client
//     certificate; or if it is a node certificate of a cluster this one
//     holds an inbound replication link from (link_server.go). Any other
//     certificate ends the handshake; a connection without a certificate is
//     accepted.
//   - Peer RPCs run VerifyConnection again on the connection, so a client
//     certificate never passes for a node's.
//   - While the level is "cluster", every HSM RPC on a connection whose
//     certificate does not chain to a registered anchor is refused with
//     PERMISSION_DENIED (CKR_DEVICE_ERROR), saying what to do. The policy is read at every
//     handshake and every RPC: a change applies at once, with no restart.

// hsmMethodPrefix starts the full method name of every HSM RPC
// (hsmv1.HSM_ServiceDesc.ServiceName; a test checks they agree).
const hsmMethodPrefix = "/coffer.hsm.v1.HSM/"

// serverTLS is the TLS configuration of the listener: Config.ServerTLS on
// TLS 1.3, also accepting client certificates of the registered anchors.
func (n *Node) serverTLS() *tls.Config {
	tc := n.cfg.ServerTLS.Clone()
	tc.MinVersion = tls.VersionTLS13
	verifyNode := n.cfg.ServerTLS.VerifyConnection
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		nodeErr := verifyNode(cs)
		if nodeErr == nil || len(cs.PeerCertificates) == 0 {
			return nodeErr
		}
		dev := n.dev.Load()
		if dev == nil {
			return nodeErr
		}
		pol := dev.ClientTLSPolicy()
		if err := pol.VerifyClient(cs.PeerCertificates, n.cfg.Now()); err != nil {
			if _, ok := n.inboundLinkFor(cs.PeerCertificates); ok {
				return nil // a node of a linked source cluster (link_server.go)
			}
			n.log.Info("TLS handshake refused: unknown client certificate",
				"subject", cs.PeerCertificates[0].Subject.String(), "as_node", nodeErr, "as_client", err)
			return fmt.Errorf("certificate %q is neither a node certificate of cluster %s nor issued by a registered trust anchor",
				cs.PeerCertificates[0].Subject.String(), n.cfg.ClusterID)
		}
		n.verified.add(pol, cs.PeerCertificates)
		return nil
	}
	return tc
}

// connState is the TLS state of the connection ctx's RPC came on.
func connState(ctx context.Context) (tls.ConnectionState, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return tls.ConnectionState{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return tls.ConnectionState{}, false
	}
	return info.State, true
}

// clientChain is the certificate chain the RPC's connection presented
// (nil if none).
func clientChain(ctx context.Context) []*x509.Certificate {
	st, _ := connState(ctx)
	return st.PeerCertificates
}

// verifyNodeConnection checks that the RPC's connection presented a node
// certificate of the cluster, as Config.ServerTLS's VerifyConnection
// decides.
func (n *Node) verifyNodeConnection(ctx context.Context) error {
	st, ok := connState(ctx)
	switch {
	case !ok:
		return errors.New("not a TLS connection")
	case len(st.PeerCertificates) == 0:
		return errors.New("no certificate")
	}
	return n.cfg.ServerTLS.VerifyConnection(st)
}

// enforceClientTLS refuses HSM RPCs from connections without an accepted
// client certificate while the cluster enforces client mTLS.
func (n *Node) enforceClientTLS(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, hsmMethodPrefix) {
		if err := n.checkClient(ctx); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

func (n *Node) checkClient(ctx context.Context) error {
	dev := n.dev.Load()
	if dev == nil {
		return nil // nothing to enforce yet: a joining node answers "not ready"
	}
	pol := dev.ClientTLSPolicy()
	if pol.Level() != hsm.MTLSCluster {
		return nil
	}
	chain, now := clientChain(ctx), n.cfg.Now()
	if n.verified.has(pol, chain, now) {
		return nil
	}
	if err := pol.VerifyClient(chain, now); err != nil {
		return errClientCertificate(err)
	}
	n.verified.add(pol, chain)
	return nil
}

// maxVerifiedClients bounds the verifiedClients cache; it starts afresh
// when full.
const maxVerifiedClients = 4096

// verifiedClients remembers the client certificate chains that verified
// under one policy snapshot, until the first of them expires, so that an
// enforcing node verifies a client's chain once and not at every RPC. A new
// snapshot (any change of the settings) empties it.
type verifiedClients struct {
	mu     sync.Mutex
	policy *hsm.ClientTLSPolicy
	until  map[[sha256.Size]byte]time.Time // chain digest → end of its validity
}

func chainKey(chain []*x509.Certificate) ([sha256.Size]byte, time.Time) {
	h := sha256.New()
	until := chain[0].NotAfter
	for _, c := range chain {
		fmt.Fprintf(h, "%d:", len(c.Raw))
		h.Write(c.Raw)
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k, until
}

func (v *verifiedClients) has(p *hsm.ClientTLSPolicy, chain []*x509.Certificate, now time.Time) bool {
	if len(chain) == 0 {
		return false
	}
	k, _ := chainKey(chain)
	v.mu.Lock()
	defer v.mu.Unlock()
	until, ok := v.until[k]
	return ok && v.policy == p && !now.After(until)
}

func (v *verifiedClients) add(p *hsm.ClientTLSPolicy, chain []*x509.Certificate) {
	if len(chain) == 0 {
		return
	}
	k, until := chainKey(chain)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.policy != p || len(v.until) >= maxVerifiedClients {
		v.policy, v.until = p, map[[sha256.Size]byte]time.Time{}
	}
	v.until[k] = until
}
