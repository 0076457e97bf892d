package node

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
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
//
// The MK is handed out to one join per node id. Before it answers, the
// serving node records the node id as joined in a cluster setting
// (joinedID) with a commitment to the joining node's join secret, and pushes
// it to every reachable peer. A Clone for a node id with that record is
// refused (AlreadyExists) on every HSM that has it, unless it carries the
// same join secret: the same join asking again after a lost answer or a
// crash (the joining node keeps its secret in its store until it holds the
// MK). Once a node holds the MK and has caught up it makes its record final
// (no commitment), and every node holding the MK does so at start (nodes
// that joined before the record existed, the first node): after that no
// Clone for its id is answered by any HSM, so a certificate minted for a
// node that holds the MK gets nothing. Left open: two Clones for one new id
// racing on two HSMs before the record reaches the second (one HSM
// serializes its own); it is open only while a node joins.

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

// ErrAlreadyJoined means a peer refused to hand this node the masking key
// because its node id already joined the cluster (or another join for it
// is under way): a node id receives the key in one join only. A new HSM
// needs a new node id.
var ErrAlreadyJoined = errors.New("node id already joined the cluster")

// joinedPrefix starts the ids of the cluster settings that record which
// node ids have received the masking key: joinedPrefix + cluster id + "/" +
// node id. The payload is
//
//	joinedFormat | serving node u32 | unix nanoseconds u64 | commitment length u8 (0 or 32) | commitment
//
// with the commitment joinCommitment(join secret), absent once final. These
// records are never deleted.
const (
	joinedPrefix = "node-joined/"
	joinedFormat = 1
	// joinSecretLen is the length of a join secret.
	joinSecretLen = 32
	// joinSecretName is the joining node's store-local value holding its
	// join secret.
	joinSecretName = "join-secret"
	joinCommitCtx  = "coffer join secret v1\x00"
)

func joinedID(cluster string, node uint32) string {
	return fmt.Sprintf("%s%s/%d", joinedPrefix, cluster, node)
}

// JoinedNodeID returns the node id a cluster setting's id records as
// joined, if it is such a record (of any cluster).
func JoinedNodeID(settingID string) (uint32, bool) {
	rest, ok := strings.CutPrefix(settingID, joinedPrefix)
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return 0, false
	}
	id, err := strconv.ParseUint(rest[i+1:], 10, 32)
	if err != nil || id == 0 {
		return 0, false
	}
	return uint32(id), true
}

func joinCommitment(secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte(joinCommitCtx))
	h.Write(secret)
	return h.Sum(nil)
}

// joinState is what a node knows of a node id's join.
type joinState struct {
	joined bool
	commit []byte // the join secret's commitment; nil once final
}

// joinedState reads node id's joined record. A tombstone counts as final
// (only a masking-key holder can make one, and none does).
func (n *Node) joinedState(ctx context.Context, id uint32) (joinState, error) {
	key := joinedID(n.cfg.ClusterID, id)
	rec, err := n.store.Get(ctx, store.KindSetting, key)
	if errors.Is(err, store.ErrNotFound) {
		_, err = n.store.Export(ctx, store.KindSetting, key)
		if errors.Is(err, store.ErrNotFound) {
			return joinState{}, nil
		}
		return joinState{joined: true}, err
	}
	if err != nil {
		return joinState{}, err
	}
	b := rec.Data
	if len(b) < 14 || b[0] != joinedFormat || int(b[13]) != len(b)-14 || (b[13] != 0 && b[13] != sha256.Size) {
		return joinState{joined: true}, fmt.Errorf("node: joined record of node %d: malformed", id)
	}
	st := joinState{joined: true}
	if b[13] != 0 {
		st.commit = bytes.Clone(b[14:])
	}
	return st, nil
}

// markJoined records node id as joined, with the commitment of its join
// secret (nil: final), and pushes the record to the peers (within
// userSyncTimeout; anti-entropy delivers it to the others).
func (n *Node) markJoined(ctx context.Context, id uint32, commit []byte) error {
	b := []byte{joinedFormat}
	b = binary.BigEndian.AppendUint32(b, n.cfg.NodeID)
	b = binary.BigEndian.AppendUint64(b, uint64(n.cfg.Now().UnixNano()))
	b = append(b, byte(len(commit)))
	b = append(b, commit...)
	key := joinedID(n.cfg.ClusterID, id)
	if _, err := n.store.Put(ctx, store.KindSetting, key, b); err != nil {
		return fmt.Errorf("node: record node %d as joined: %w", id, err)
	}
	n.propagate(ctx, peersync.Key{Kind: store.KindSetting, ID: key})
	return nil
}

// markSelfJoined makes this node's joined record final; the node holds the
// masking key.
func (n *Node) markSelfJoined(ctx context.Context) error {
	st, err := n.joinedState(ctx, n.cfg.NodeID)
	if err != nil || (st.joined && st.commit == nil) {
		return err
	}
	return n.markJoined(ctx, n.cfg.NodeID, nil)
}

// joinSecret returns this joining node's join secret, made and stored
// durably the first time.
func (n *Node) joinSecret(ctx context.Context) ([]byte, error) {
	b, err := n.store.GetLocal(joinSecretName)
	switch {
	case err == nil && len(b) == joinSecretLen:
		return b, nil
	case err == nil:
		return nil, fmt.Errorf("node: join secret of %d bytes", len(b))
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("node: join secret: %w", err)
	}
	b = make([]byte, joinSecretLen)
	rand.Read(b)
	if err := n.store.PutLocal(ctx, joinSecretName, b); err != nil {
		return nil, fmt.Errorf("node: join secret: %w", err)
	}
	return b, nil
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
	// One Clone at a time, so two requests for one id cannot both pass the
	// joined check here.
	n.cloneMu.Lock()
	defer n.cloneMu.Unlock()
	js, err := n.joinedState(ctx, id)
	if err != nil {
		return nil, peerStatus(err)
	}
	secret := req.GetJoinSecret()
	if len(secret) != 0 && len(secret) != joinSecretLen {
		return nil, status.Errorf(codes.InvalidArgument, "join secret of %d bytes, want %d", len(secret), joinSecretLen)
	}
	var commit []byte
	if len(secret) != 0 {
		commit = joinCommitment(secret)
	}
	retry := js.joined && js.commit != nil && commit != nil && subtle.ConstantTimeCompare(js.commit, commit) == 1
	if js.joined && !retry {
		n.log.Warn("refused the masking key to a node id that already joined", "peer", id)
		if err := n.audit.AppendSync(ctx, audit.Event{Op: "cluster.mk-clone", Target: fmt.Sprintf("node-%d", id), Result: "already-joined"}); err != nil {
			return nil, status.Errorf(codes.Internal, "audit: %v", err)
		}
		return nil, status.Errorf(codes.AlreadyExists, "node %d already joined cluster %s: a node id receives the masking key in one join only; give a new HSM a new node id", id, n.cfg.ClusterID)
	}
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
	// Recorded before the key leaves: only the same join (its secret) may
	// ask again.
	if !retry {
		if err := n.markJoined(ctx, id, commit); err != nil {
			return nil, peerStatus(err)
		}
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
			if status.Code(err) == codes.AlreadyExists {
				return fmt.Errorf("%w: peer %d: %s", ErrAlreadyJoined, p.id, status.Convert(err).Message())
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
	secret, err := n.joinSecret(ctx)
	if err != nil {
		return err
	}
	defer clear(secret)
	resp, err := p.rpc.Clone(ctx, &hsmv1.CloneRequest{NodeId: n.cfg.NodeID, EphemeralPublic: eph.PublicKey().Bytes(), JoinSecret: secret})
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
