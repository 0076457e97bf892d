package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/backup"
	"github.com/coffer-hsm/coffer/internal/store"
	hsmv1 "github.com/coffer-hsm/coffer/proto/hsmv1"
)

// operatorServer serves the Operator service: the HSM side's own tools
// (coffer hsm backup) on this node's host, presenting this node's own node
// certificate. Nobody else may call it: not a client, not a peer, not
// another node of the cluster.
type operatorServer struct {
	hsmv1.UnimplementedOperatorServer
	n *Node
}

// authorizeSelf admits only a connection whose client certificate is a node
// certificate of the cluster and is this node's own.
func (n *Node) authorizeSelf(ctx context.Context) error {
	if err := n.verifyNodeConnection(ctx); err != nil {
		return status.Errorf(codes.PermissionDenied, "operator calls need this node's own node certificate: %v", err)
	}
	st, _ := connState(ctx)
	own := n.cfg.ServerTLS.Certificates
	if len(own) == 0 || len(own[0].Certificate) == 0 || !bytes.Equal(own[0].Certificate[0], st.PeerCertificates[0].Raw) {
		return status.Errorf(codes.PermissionDenied, "operator calls need this node's own node certificate; %q is not it",
			st.PeerCertificates[0].Subject.String())
	}
	return nil
}

// chunkWriter sends what is written to it as BackupChunks.
type chunkWriter struct {
	stream hsmv1.Operator_BackupServer
}

func (w chunkWriter) Write(p []byte) (int, error) {
	if err := w.stream.Send(&hsmv1.BackupChunk{Data: bytes.Clone(p)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Backup streams a blob of every token object, user and setting record of
// the store (tombstones included; session objects live in no record, and
// node-local values are not records) bound to the request's backup id.
func (s *operatorServer) Backup(req *hsmv1.BackupRequest, stream hsmv1.Operator_BackupServer) error {
	ctx := stream.Context()
	n := s.n
	if err := n.authorizeSelf(ctx); err != nil {
		return err
	}
	id := req.GetBackupId()
	if id == "" || len(id) > backup.MaxIDLen {
		return status.Errorf(codes.InvalidArgument, "backup_id of %d bytes not in 1..%d", len(id), backup.MaxIDLen)
	}
	if n.cfg.BackupKeyPath == "" {
		return status.Error(codes.FailedPrecondition, "this node has no backup key: name one in its config (backup_key)")
	}
	key, err := backup.ReadKeyFile(n.cfg.BackupKeyPath)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	defer clear(key)
	dev := n.dev.Load()
	if dev == nil || !n.store.HasMaskingKey() {
		return status.Error(codes.Unavailable, "node has not joined its cluster yet (no device loaded)")
	}
	recs, err := n.backupRecords(ctx)
	if err != nil {
		return peerStatus(err)
	}
	mk, err := n.store.MaskingKey()
	if err != nil {
		return peerStatus(err)
	}
	defer clear(mk)
	check, err := n.store.MaskingKeyCheck()
	if err != nil {
		return peerStatus(err)
	}
	h := backup.Header{
		BackupID: id, SourceClusterID: n.cfg.ClusterID, Created: n.cfg.Now().UTC(), NodeID: n.cfg.NodeID,
		MKCheck: check, FIPS: n.cfg.Device.FIPS, ClusterCertificate: req.GetClusterCertificate(),
		TrustAnchor: req.GetTrustAnchor(), ClusterCSR: req.GetClusterCsr(), Activated: dev.Activated(),
		Records: uint64(len(recs)),
	}
	var ck []byte
	if len(req.GetClusterKey()) != 0 {
		ck = req.GetClusterKey()
	}
	w, err := backup.NewWriter(chunkWriter{stream}, key, h, mk, ck)
	clear(req.ClusterKey)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	for _, r := range recs {
		if err := w.Add(r); err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
	}
	if err := w.Close(); err != nil {
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	ev := audit.Event{Op: "cluster.backup", Target: id, Result: "ok"}
	if err := n.audit.AppendSync(ctx, ev); err != nil {
		return status.Errorf(codes.Internal, "audit: %v", err)
	}
	n.log.Info("made a backup", "backup", id, "records", len(recs), "bytes", w.Size())
	return nil
}

// backupRecords returns every record of the store, sealed, tombstones
// included. A record purged between listing and export (a tombstone every
// peer had) is left out.
func (n *Node) backupRecords(ctx context.Context) ([]store.Sealed, error) {
	type key struct {
		kind store.Kind
		id   string
	}
	var keys []key
	err := n.store.Versions(ctx, func(k store.Kind, id string, _ store.Version, _ bool) error {
		keys = append(keys, key{k, id})
		return nil
	})
	if err != nil {
		return nil, err
	}
	recs := make([]store.Sealed, 0, len(keys))
	for _, k := range keys {
		rec, err := n.store.Export(ctx, k.kind, k.id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}
