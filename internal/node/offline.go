package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/store"
)

// OfflineConfig names a stopped node's data dir, for work done on its host
// without serving (RecoverAdmin).
type OfflineConfig struct {
	DataDir string
	NodeID  uint32
	Device  DeviceConfig
	Logger  *slog.Logger // nil: discard
}

// Offline is a stopped node's store, audit log and device, opened as the
// node opens them (the log against its key and anchor), with no network:
// writes stay in this store and reach the peers when the node runs again.
type Offline struct {
	n      *Node
	Device *hsm.Device
}

// openOffline opens the files of a stopped node that holds a masking key.
func openOffline(ctx context.Context, cfg OfflineConfig) (*Node, error) {
	if _, err := os.Stat(filepath.Join(cfg.DataDir, StoreFile)); err != nil {
		return nil, fmt.Errorf("node: the node's store: %w", err)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n := &Node{cfg: Config{DataDir: cfg.DataDir, NodeID: cfg.NodeID, Device: cfg.Device}, log: lg}
	if err := n.openFiles(ctx); err != nil {
		n.Close()
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("%w: is the HSM still running? stop it first", err)
		}
		return nil, err
	}
	if !n.store.HasMaskingKey() {
		n.Close()
		return nil, fmt.Errorf("node: data dir %s holds no masking key: this HSM never joined a cluster", cfg.DataDir)
	}
	return n, nil
}

// OpenOffline opens a stopped node's store, audit log and device.
func OpenOffline(ctx context.Context, cfg OfflineConfig) (*Offline, error) {
	n, err := openOffline(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := n.loadDevice(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return &Offline{n: n, Device: n.dev.Load()}, nil
}

// Close flushes the audit log (and keeps its anchor) and closes the store.
func (o *Offline) Close() error { return o.n.Close() }

// RecoverAdmin unlocks admin name on a stopped node, keeping its password
// and auditing it in the node's log (hsm.Device.RecoverAdmin): the recovery
// when every admin is locked. When the node runs again the unlock reaches
// its peers and wins over their locked record.
func RecoverAdmin(ctx context.Context, cfg OfflineConfig, name string) error {
	n, err := openOffline(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	users, err := n.countRecords(ctx, store.KindUser)
	if err != nil {
		return err
	}
	if users == 0 {
		// A device over a store without users would create a pre-admin.
		return fmt.Errorf("node: data dir %s holds no users", cfg.DataDir)
	}
	if err := n.loadDevice(ctx); err != nil {
		return err
	}
	if err := n.dev.Load().RecoverAdmin(ctx, name); err != nil {
		return err
	}
	return n.Close() // the audit record is durable and anchored before this returns
}
