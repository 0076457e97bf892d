package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-hsm/coffer/internal/audit"
	"github.com/coffer-hsm/coffer/internal/store"
)

// The audit log's trust lives in the store, not in the log: its key is
// derived from the masking key (audit.DeriveKey), and its anchor (the head
// after each durable flush) is a node-local value sealed under the node key.
// A node opens its log against both, so a rewritten or cut log stops it
// from starting; `coffer audit verify --config` checks a log the same way.

// auditAnchorName is the store's node-local value holding the anchor.
const auditAnchorName = "audit-anchor"

// anchorTimeout bounds one write of the anchor.
const anchorTimeout = 5 * time.Second

// auditTrust returns the log key (nil while the store has no masking key)
// and the kept anchor (nil if none was kept yet).
func auditTrust(st *store.Store) (key []byte, anchor *audit.Anchor, err error) {
	if st.HasMaskingKey() {
		mk, err := st.MaskingKey()
		if err != nil {
			return nil, nil, err
		}
		key, err = audit.DeriveKey(mk)
		clear(mk)
		if err != nil {
			return nil, nil, err
		}
	}
	b, err := st.GetLocal(auditAnchorName)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return key, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("audit anchor: %w", err)
	}
	var a audit.Anchor
	if err := a.UnmarshalBinary(b); err != nil {
		return nil, nil, fmt.Errorf("audit anchor: %w", err)
	}
	return key, &a, nil
}

// keepAuditAnchor is the log's Config.OnDurable: it stores the head.
func (n *Node) keepAuditAnchor(a audit.Anchor) error {
	b, err := a.MarshalBinary()
	if err != nil {
		return err
	}
	// The writer goroutine has no caller's context; the write is bounded.
	ctx, cancel := context.WithTimeout(context.Background(), anchorTimeout)
	defer cancel()
	return n.store.PutLocal(ctx, auditAnchorName, b)
}

// AuditVerifyConfig names a stopped node's files for VerifyAudit.
type AuditVerifyConfig struct {
	DataDir string
	NodeID  uint32
	// Log is the log to verify; empty means the node's own DataDir/audit.log.
	Log string
}

// VerifyAudit checks a node's audit log with the node's key and anchor: it
// opens the node's store (the node must be stopped: a running node holds
// it) to derive the key from the masking key and read the anchor, then
// verifies every record's chain and MAC and that the anchor's record is
// there. anchored reports whether an anchor was kept.
func VerifyAudit(ctx context.Context, cfg AuditVerifyConfig) (res audit.Result, anchored bool, err error) {
	dbPath := filepath.Join(cfg.DataDir, StoreFile)
	if _, err := os.Stat(dbPath); err != nil {
		return audit.Result{}, false, fmt.Errorf("node: verify audit: the node's store: %w", err)
	}
	st, err := store.Open(ctx, store.Config{
		Path: dbPath, NodeKeyPath: filepath.Join(cfg.DataDir, NodeKeyFile), Node: cfg.NodeID,
	})
	if errors.Is(err, store.ErrLocked) {
		return audit.Result{}, false, fmt.Errorf("node: verify audit: the node's store is in use: stop the node first: %w", err)
	}
	if err != nil {
		return audit.Result{}, false, fmt.Errorf("node: verify audit: %w", err)
	}
	key, anchor, err := auditTrust(st)
	st.Close()
	if err != nil {
		return audit.Result{}, false, fmt.Errorf("node: verify audit: %w", err)
	}
	if key == nil {
		return audit.Result{}, false, fmt.Errorf("node: verify audit: the store in %s holds no masking key, so no audit key", cfg.DataDir)
	}
	path := cfg.Log
	if path == "" {
		path = filepath.Join(cfg.DataDir, AuditFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return audit.Result{}, false, fmt.Errorf("node: verify audit: %w", err)
	}
	defer f.Close()
	res, err = audit.VerifyKeyed(f, key, anchor)
	clear(key)
	if err != nil {
		return res, anchor != nil, fmt.Errorf("%s: %w", path, err)
	}
	return res, anchor != nil, nil
}
