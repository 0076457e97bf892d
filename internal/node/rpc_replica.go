package node

import (
	"context"
	"crypto/subtle"
	"fmt"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/peersync"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// This file: replication of one key or user between clone clusters
// (ExportReplica, ImportReplica and their user twins; envelope.go is the
// envelope). The device decides who may send and take a record
// (hsm/replica.go); the node seals and opens the envelope, and on the
// destination applies the record as it applies a peer's (store.Apply, then
// onApply) and pushes it to its peers.

// errNoSharedMK is the refusal of an envelope from a cluster whose masking
// key is not this cluster's.
const errNoSharedMK = "clusters do not share a masking key: the destination was not made from a backup of the source"

func (s *hsmServer) ExportReplica(ctx context.Context, req *hsmv1.ExportReplicaRequest) (*hsmv1.ReplicaEnvelope, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.ReplicaEnvelope, error) {
		if err := s.checkDestination(req.GetDestinationClusterId()); err != nil {
			return nil, err
		}
		id := hsm.ObjectID(req.GetObject())
		if err := dev.ReplicateObject(cs.dev, id); err != nil {
			return nil, err
		}
		return s.n.envelopeOf(ctx, store.KindObject, id.String(), req.GetDestinationClusterId())
	})
}

func (s *hsmServer) ExportUserReplica(ctx context.Context, req *hsmv1.ExportUserReplicaRequest) (*hsmv1.ReplicaEnvelope, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.ReplicaEnvelope, error) {
		if err := firstErr(name("username", req.GetUsername()), s.checkDestination(req.GetDestinationClusterId())); err != nil {
			return nil, err
		}
		if err := dev.ReplicateUser(ctx, cs.dev, req.GetUsername()); err != nil {
			return nil, err
		}
		return s.n.envelopeOf(ctx, store.KindUser, req.GetUsername(), req.GetDestinationClusterId())
	})
}

func (s *hsmServer) checkDestination(dest string) error {
	switch {
	case dest == "":
		return invalidArgument(ck.CKR_ARGUMENTS_BAD, "a destination cluster id is required")
	case len(dest) > maxClusterIDLen:
		return invalidArgument(ck.CKR_ARGUMENTS_BAD, "destination cluster id of %d bytes exceeds %d", len(dest), maxClusterIDLen)
	case dest == s.n.cfg.ClusterID:
		return refusal(ck.CKR_ARGUMENTS_BAD, "the destination is this cluster (%s): a key is replicated to a clone cluster", dest)
	}
	return nil
}

// envelopeOf seals the stored record (kind, id) for dest.
func (n *Node) envelopeOf(ctx context.Context, kind store.Kind, id, dest string) (*hsmv1.ReplicaEnvelope, error) {
	rec, err := n.store.Export(ctx, kind, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hsm.ErrDevice, err)
	}
	if rec.Tombstone {
		return nil, refusal(ck.CKR_OBJECT_HANDLE_INVALID, "%s %s was deleted", kind, id)
	}
	mk, err := n.store.MaskingKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hsm.ErrDevice, err)
	}
	defer clear(mk)
	check, err := n.store.MaskingKeyCheck()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hsm.ErrDevice, err)
	}
	b, err := sealEnvelope(mk, check, n.cfg.ClusterID, dest, n.cfg.Now(), rec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hsm.ErrDevice, err)
	}
	return &hsmv1.ReplicaEnvelope{Envelope: b, SourceClusterId: n.cfg.ClusterID, DestinationClusterId: dest}, nil
}

// openEnvelope checks an envelope for this cluster and returns its record
// and the record's payload in clear. Its refusals say what is wrong.
func (n *Node) openEnvelope(b []byte, kind store.Kind) (*envelope, store.Record, error) {
	e, err := parseEnvelope(b)
	if err != nil {
		return nil, store.Record{}, invalidArgument(ck.CKR_ARGUMENTS_BAD, "%v", err)
	}
	check, err := n.store.MaskingKeyCheck()
	if err != nil {
		return nil, store.Record{}, fmt.Errorf("%w: %w", hsm.ErrDevice, err)
	}
	now := n.cfg.Now()
	switch {
	case e.destination != n.cfg.ClusterID:
		return nil, store.Record{}, fmt.Errorf("%w: the envelope is for cluster %s, not this cluster (%s)", hsm.ErrReplicaRefused, e.destination, n.cfg.ClusterID)
	case e.source == n.cfg.ClusterID:
		return nil, store.Record{}, fmt.Errorf("%w: the envelope comes from this cluster (%s)", hsm.ErrReplicaRefused, e.source)
	case subtle.ConstantTimeCompare(e.mkCheck, check) != 1:
		return nil, store.Record{}, fmt.Errorf("%w: %s (source %s, destination %s)", hsm.ErrReplicaRefused, errNoSharedMK, e.source, n.cfg.ClusterID)
	}
	mk, err := n.store.MaskingKey()
	if err != nil {
		return nil, store.Record{}, fmt.Errorf("%w: %w", hsm.ErrDevice, err)
	}
	ok, err := e.verify(mk)
	clear(mk)
	switch {
	case err != nil:
		return nil, store.Record{}, fmt.Errorf("%w: %w", hsm.ErrDevice, err)
	case !ok:
		return nil, store.Record{}, fmt.Errorf("%w: the envelope does not verify: it was altered, or not made by an HSM of cluster %s", hsm.ErrReplicaRefused, e.source)
	case now.Sub(e.issued) > replicaTTL:
		return nil, store.Record{}, fmt.Errorf("%w: the envelope expired: issued %s, accepted for %s; export the record again", hsm.ErrReplicaRefused,
			e.issued.UTC().Format("2006-01-02T15:04:05Z"), replicaTTL)
	case e.issued.Sub(now) > replicaSkew:
		return nil, store.Record{}, fmt.Errorf("%w: the envelope was issued %s, later than this HSM's clock allows", hsm.ErrReplicaRefused, e.issued.UTC().Format("2006-01-02T15:04:05Z"))
	case e.record.Kind != kind:
		return nil, store.Record{}, invalidArgument(ck.CKR_ARGUMENTS_BAD, "the envelope holds a %s record, not a %s", e.record.Kind, kind)
	case e.record.Tombstone:
		return nil, store.Record{}, fmt.Errorf("%w: the envelope holds a deletion", hsm.ErrReplicaRefused)
	}
	rec, err := n.store.OpenSealed(e.record)
	if err != nil { // the MAC verified, so this is a broken source
		return nil, store.Record{}, fmt.Errorf("%w: the envelope's record does not open under this cluster's masking key: %v", hsm.ErrReplicaRefused, err)
	}
	return e, rec, nil
}

// importRecord runs one import: the envelope's checks, then admit (the
// device's rules and the store write), then the reload and the push to the
// peers. Refusals before the device are audited here; the device audits
// its own.
func (s *hsmServer) importRecord(ctx context.Context, dev *hsm.Device, cs *clientSession, b []byte, kind store.Kind,
	admit func(rec store.Record, apply func(context.Context) (bool, error)) (bool, error)) (*envelope, bool, error) {
	e, rec, err := s.n.openEnvelope(b, kind)
	if err != nil {
		rv, ok := refusalRV(err)
		if !ok {
			rv = ck.CKR_FUNCTION_FAILED
		}
		var source string
		if pe, perr := parseEnvelope(b); perr == nil {
			source = pe.source // the source cluster it claims
		}
		dev.AuditRefusedReplica(cs.dev, deviceKindOf(kind), source, rv)
		return nil, false, err
	}
	defer clear(rec.Data)
	applied, err := admit(rec, func(ctx context.Context) (bool, error) { return s.n.store.Apply(ctx, e.record) })
	if err != nil {
		return nil, false, err
	}
	if applied {
		s.n.onApply(ctx, e.record)
		s.n.propagate(ctx, peersync.Key{Kind: e.record.Kind, ID: e.record.ID})
	}
	return e, applied, nil
}

func (s *hsmServer) ImportReplica(ctx context.Context, req *hsmv1.ImportReplicaRequest) (*hsmv1.ImportReplicaResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.ImportReplicaResponse, error) {
		if !s.n.sessions.loggedIn(req.GetSession()) {
			return nil, hsm.ErrNotLoggedIn
		}
		var id hsm.ObjectID
		e, applied, err := s.importRecord(ctx, dev, cs, req.GetEnvelope(), store.KindObject,
			func(rec store.Record, apply func(context.Context) (bool, error)) (bool, error) {
				var applied bool
				var err error
				id, applied, err = dev.AdmitObject(ctx, cs.dev, rec.ID, rec.Data, apply)
				return applied, err
			})
		if err != nil {
			return nil, err
		}
		// A newer deletion here wins over the replica (last writer wins).
		if _, err := dev.Info(cs.dev, id); err != nil {
			return nil, refusal(ck.CKR_OBJECT_HANDLE_INVALID, "key %s was deleted on this cluster after the version replicated", id)
		}
		// Its peers get it from this node's sync (importRecord), as any
		// change made here; the call does not wait for them.
		return &hsmv1.ImportReplicaResponse{Object: uint64(id), Applied: applied, SourceClusterId: e.source, StoredOn: []uint32{s.n.cfg.NodeID}}, nil
	})
}

func (s *hsmServer) ImportUserReplica(ctx context.Context, req *hsmv1.ImportUserReplicaRequest) (*hsmv1.ImportReplicaResponse, error) {
	return inSession(s, req.GetSession(), func(dev *hsm.Device, cs *clientSession) (*hsmv1.ImportReplicaResponse, error) {
		if !s.n.sessions.loggedIn(req.GetSession()) {
			return nil, hsm.ErrNotLoggedIn
		}
		ap, err := approvals(req.GetApprovals())
		if err != nil {
			return nil, err
		}
		e, applied, err := s.importRecord(ctx, dev, cs, req.GetEnvelope(), store.KindUser,
			func(rec store.Record, apply func(context.Context) (bool, error)) (bool, error) {
				return dev.AdmitUser(ctx, cs.dev, rec.ID, rec.Data, ap, apply)
			})
		if err != nil {
			return nil, err
		}
		return &hsmv1.ImportReplicaResponse{Applied: applied, SourceClusterId: e.source, StoredOn: []uint32{s.n.cfg.NodeID}}, nil
	})
}

func deviceKindOf(k store.Kind) hsm.RecordKind {
	if k == store.KindUser {
		return hsm.RecordUser
	}
	return hsm.RecordObject
}
