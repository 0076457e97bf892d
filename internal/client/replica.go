package client

import (
	"context"

	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// Replica is one key's or user's record on its way from a cluster to a clone
// cluster (one that shares its masking key): sealed, and opaque to the
// client. An HSM of Destination takes it for a few minutes after it was
// made.
type Replica struct {
	Envelope    []byte
	Source      string // cluster id
	Destination string // cluster id
}

// Imported is what the destination did with a Replica.
type Imported struct {
	Object ObjectID // the key's handle on the destination (a key's replica)
	// Applied is false when the destination had the record already, at the
	// same or a newer version: it was up to date.
	Applied  bool
	Source   string
	StoredOn []uint32
}

// ExportReplica returns the sealed record of a token key the session's
// crypto user owns, for the clone cluster destination.
func (s *Session) ExportReplica(ctx context.Context, id ObjectID, destination string) (*Replica, error) {
	var r *hsmv1.ReplicaEnvelope
	_, err := s.c.invoke(ctx, s, call{op: "export replica", retry: true, objs: []ObjectID{id}}, func(ctx context.Context, m *member, sid uint64) error {
		var err error
		r, err = m.rpc.ExportReplica(ctx, &hsmv1.ExportReplicaRequest{Session: sid, Object: uint64(id), DestinationClusterId: destination})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Replica{Envelope: r.GetEnvelope(), Source: r.GetSourceClusterId(), Destination: r.GetDestinationClusterId()}, nil
}

// ImportReplica applies a key's Replica on this (the destination) cluster.
// Sending it again is harmless (the second is up to date), so it is resent
// after a transport failure.
func (s *Session) ImportReplica(ctx context.Context, r *Replica) (*Imported, error) {
	var resp *hsmv1.ImportReplicaResponse
	m, err := s.c.invoke(ctx, s, call{op: "import replica", retry: true}, func(ctx context.Context, m *member, sid uint64) error {
		var err error
		resp, err = m.rpc.ImportReplica(ctx, &hsmv1.ImportReplicaRequest{Session: sid, Envelope: r.Envelope})
		return err
	})
	if err != nil {
		return nil, err
	}
	id := ObjectID(resp.GetObject())
	s.c.fresh.add(id, m.bit(), s.c.all.Load()) // read it where it is until its peers have it
	return &Imported{Object: id, Applied: resp.GetApplied(), Source: resp.GetSourceClusterId(), StoredOn: resp.GetStoredOn()}, nil
}

// ExportUserReplica returns the record of a user (admins only) for the
// clone cluster destination.
func (s *Session) ExportUserReplica(ctx context.Context, username, destination string) (*Replica, error) {
	var r *hsmv1.ReplicaEnvelope
	_, err := s.c.invoke(ctx, s, call{op: "export user replica", retry: true}, func(ctx context.Context, m *member, sid uint64) error {
		var err error
		r, err = m.rpc.ExportUserReplica(ctx, &hsmv1.ExportUserReplicaRequest{Session: sid, Username: username, DestinationClusterId: destination})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Replica{Envelope: r.GetEnvelope(), Source: r.GetSourceClusterId(), Destination: r.GetDestinationClusterId()}, nil
}

// ImportUserReplica applies a user's Replica on this cluster; approvals
// are needed when its user-management quorum value is above 1.
func (s *Session) ImportUserReplica(ctx context.Context, r *Replica, approvals *Approvals) (*Imported, error) {
	cl, err := s.approved(ctx, "import user replica", approvals)
	if err != nil {
		return nil, err
	}
	cl.retry = approvals == nil || approvals.Token == ""
	var resp *hsmv1.ImportReplicaResponse
	if _, err := s.c.invoke(ctx, s, cl, func(ctx context.Context, m *member, sid uint64) error {
		var err error
		resp, err = m.rpc.ImportUserReplica(ctx, &hsmv1.ImportUserReplicaRequest{Session: sid, Envelope: r.Envelope, Approvals: wireApprovals(approvals)})
		return err
	}); err != nil {
		return nil, err
	}
	return &Imported{Applied: resp.GetApplied(), Source: resp.GetSourceClusterId(), StoredOn: resp.GetStoredOn()}, nil
}
