package node

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Cloning hands the masking key (MK) to a new node of the cluster. Both
// sides make an ephemeral P-256 key; the key-encryption key is
// HKDF-SHA256(ECDH secret, info = cloneInfo) and the MK travels under it
// with AES key wrap (RFC 3394). The info binds the cluster, both node ids
// and both ephemeral keys, so a wrapped MK opens only for the node that
// asked, in this exchange. The serving node answers only a caller whose TLS
// client certificate is a node certificate of the cluster (AuthorizePeer)
// naming the node id the request carries; the caller has already checked
// the server's certificate through PeerTLS and its identity through Hello.

const cloneLabel = "coffer mk clone v1\x00"

// helloTimeout and cloneTimeout bound one call to one peer.
const (
	helloTimeout = 5 * time.Second
	cloneTimeout = 10 * time.Second
)

func cloneInfo(cluster string, server, client uint32, clientPub, serverPub []byte) string {
	b := []byte(cloneLabel)
	b = binary.BigEndian.AppendUint16(b, uint16(len(cluster)))
	b = append(b, cluster...)
	b = binary.BigEndian.AppendUint32(b, server)
	b = binary.BigEndian.AppendUint32(b, client)
	b = append(b, clientPub...)
	b = append(b, serverPub...)
	return string(b)
}

// cloneKEK derives the key-encryption key of one exchange.
func cloneKEK(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, info string) ([]byte, error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, err
	}
	defer clear(shared)
	return hkdf.Key(sha256.New, shared, nil, info, 32)
}

// Clone serves a joining node.
func (s *peerServer) Clone(ctx context.Context, req *hsmv1.CloneRequest) (*hsmv1.CloneResponse, error) {
	id, err := s.authorize(ctx, req.GetNodeId())
	if err != nil {
		return nil, err
	}
	if req.GetNodeId() == 0 {
		return nil, status.Error(codes.InvalidArgument, "node_id is required")
	}
	peerPub, err := ecdh.P256().NewPublicKey(req.GetEphemeralPublic())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "ephemeral public key: %v", err)
	}
	n := s.n
	mk, err := n.maskingKey()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "cannot hand out the masking key: %v", err)
	}
	defer clear(mk)
	check, err := n.store.MaskingKeyCheck()
	if err != nil {
		return nil, peerStatus(err)
	}
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "ephemeral key: %v", err)
	}
	kek, err := cloneKEK(eph, peerPub, cloneInfo(n.cfg.ClusterID, n.cfg.NodeID, id, peerPub.Bytes(), eph.PublicKey().Bytes()))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "key agreement: %v", err)
	}
	defer clear(kek)
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	wrapped, err := mech.WrapKW(nil, block, nil, mk)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "wrap: %v", err)
	}
	ev := audit.Event{Op: "cluster.mk-clone", Target: fmt.Sprintf("node-%d", id), Result: "ok"}
	if err := n.audit.AppendSync(ctx, ev); err != nil {
		return nil, status.Errorf(codes.Internal, "audit: %v", err)
	}
	n.log.Info("handed the masking key to a joining node", "peer", id)
	return &hsmv1.CloneResponse{EphemeralPublic: eph.PublicKey().Bytes(), WrappedMk: wrapped, MkCheck: check}, nil
}

// cloneMaskingKey asks the peers in turn for the masking key until one
// hands it over or ctx ends.
func (n *Node) cloneMaskingKey(ctx context.Context) error {
	wait := 500 * time.Millisecond
	for {
		for _, p := range n.peers {
			err := n.cloneFrom(ctx, p)
			if err == nil {
				return nil
			}
			if errors.Is(err, ErrOtherCluster) {
				return err
			}
			n.log.Warn("could not clone the masking key", "peer", p.id, "addr", p.addr, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func (n *Node) cloneFrom(ctx context.Context, p *peerClient) error {
	ctx, cancel := context.WithTimeout(ctx, cloneTimeout)
	defer cancel()
	if _, err := n.hello(ctx, p); err != nil {
		return err
	}
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	resp, err := p.rpc.Clone(ctx, &hsmv1.CloneRequest{NodeId: n.cfg.NodeID, EphemeralPublic: eph.PublicKey().Bytes()})
	if err != nil {
		return err
	}
	peerPub, err := ecdh.P256().NewPublicKey(resp.GetEphemeralPublic())
	if err != nil {
		return fmt.Errorf("peer's ephemeral key: %w", err)
	}
	kek, err := cloneKEK(eph, peerPub, cloneInfo(n.cfg.ClusterID, p.id, n.cfg.NodeID, eph.PublicKey().Bytes(), peerPub.Bytes()))
	if err != nil {
		return fmt.Errorf("key agreement: %w", err)
	}
	defer clear(kek)
	block, err := aes.NewCipher(kek)
	if err != nil {
		return err
	}
	mk, err := mech.UnwrapKW(nil, block, nil, resp.GetWrappedMk())
	if err != nil {
		return fmt.Errorf("unwrap the masking key: %w", err)
	}
	defer clear(mk)
	if len(mk) != 32 {
		return fmt.Errorf("masking key of %d bytes", len(mk))
	}
	if err := n.setMaskingKey(ctx, mk); err != nil {
		return err
	}
	check, err := n.store.MaskingKeyCheck()
	if err != nil {
		return err
	}
	if !bytes.Equal(check, resp.GetMkCheck()) {
		return fmt.Errorf("masking key from peer %d does not match its own check value", p.id)
	}
	n.log.Info("cloned the masking key", "peer", p.id)
	return n.audit.AppendSync(ctx, audit.Event{Op: "cluster.mk-cloned", Target: fmt.Sprintf("node-%d", p.id), Result: "ok"})
}

// hello asks a peer who it is, and checks it is the configured node of
// this cluster with the same masking key (if both have one).
func (n *Node) hello(ctx context.Context, p *peerClient) (*hsmv1.HelloResponse, error) {
	var own []byte
	if n.store.HasMaskingKey() {
		var err error
		if own, err = n.store.MaskingKeyCheck(); err != nil {
			return nil, err
		}
	}
	resp, err := p.rpc.Hello(ctx, &hsmv1.HelloRequest{NodeId: n.cfg.NodeID, ClusterId: n.cfg.ClusterID, MkCheck: own})
	if err != nil {
		return nil, err
	}
	switch {
	case resp.GetNodeId() != p.id:
		return nil, fmt.Errorf("peer at %s says it is node %d, configured as node %d", p.addr, resp.GetNodeId(), p.id)
	case resp.GetClusterId() != n.cfg.ClusterID:
		return nil, fmt.Errorf("peer %d at %s is in cluster %q, this node in %q", p.id, p.addr, resp.GetClusterId(), n.cfg.ClusterID)
	case own != nil && len(resp.GetMkCheck()) > 0 && !bytes.Equal(own, resp.GetMkCheck()):
		return nil, fmt.Errorf("data dir %s holds the %w (check %x, peer %d at %s has %x), refusing to join",
			n.cfg.DataDir, ErrOtherCluster, short(own), p.id, p.addr, short(resp.GetMkCheck()))
	}
	return resp, nil
}

func short(b []byte) []byte { return b[:min(len(b), 8)] }

// checkPeers says hello to every peer at once. A peer of another cluster,
// or not the node it is configured as, stops the node; an unreachable one
// is only logged (peersync keeps trying it).
func (n *Node) checkPeers(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, p := range n.peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, helloTimeout)
			defer cancel()
			_, err := n.hello(ctx, p)
			if _, isStatus := status.FromError(err); err == nil || isStatus {
				if err != nil {
					n.log.Warn("peer not reachable at start", "peer", p.id, "addr", p.addr, "err", err)
				}
				return
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
