package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/coffer-hsm/coffer/internal/durable"

	"github.com/coffer-hsm/coffer/internal/backup"
	"github.com/coffer-hsm/coffer/internal/hsm"
	"github.com/coffer-hsm/coffer/internal/store"
)

// restoreWorkers apply a backup's records concurrently, so the store's group
// commit shares one fsync among many of them.
const restoreWorkers = 32

// restoreSuffix names the directory, beside the data directory, in which a
// restore builds the store before renaming it into place.
const restoreSuffix = ".restoring"

// restoreStore builds the data directory from Config.RestoreBlob when there
// is no store yet, and reports whether it did. The blob is verified whole
// before any record is applied; the store is built in a temporary directory
// beside the data directory (node key, masking key from the blob, every
// record, each durable) and renamed into place only when all of it is
// there and the blob read back unchanged: a crash or a refused blob leaves
// no data directory (a leftover temporary one is removed by the next
// start).
func (n *Node) restoreStore(ctx context.Context) (restored bool, err error) {
	dir := filepath.Clean(n.cfg.DataDir)
	if _, err := os.Stat(filepath.Join(dir, StoreFile)); err == nil {
		return false, nil // restored before (or a store of its own): used as it is
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("node: restore: %w", err)
	}
	tmp := dir + restoreSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return false, fmt.Errorf("node: restore: remove a restore left unfinished: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	key, err := backup.ReadKeyFile(n.cfg.BackupKeyPath)
	if err != nil {
		return false, fmt.Errorf("node: restore: %w", err)
	}
	defer clear(key)
	f, err := os.Open(n.cfg.RestoreBlob)
	if err != nil {
		return false, fmt.Errorf("node: restore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("node: restore: %w", err)
	}
	b, err := backup.Open(f, fi.Size(), key, n.cfg.RestoreBackupID)
	if err != nil {
		return false, fmt.Errorf("node: restore from %s: %w", n.cfg.RestoreBlob, err)
	}
	defer b.Wipe()
	// A backup restores into a node of its own mode (CloudHSM). Keys made
	// under FIPS rules stay under them: a non-FIPS node would let them be
	// used with mechanisms that are not approved. And a FIPS cluster holds
	// only keys made under FIPS rules; it would also share its masking key
	// with a non-FIPS cluster, to which key replicate or a link could then
	// carry its FIPS keys.
	switch {
	case b.Header.FIPS && !n.cfg.Device.FIPS:
		return false, fmt.Errorf("node: restore from %s: backup %s is of a FIPS cluster; restore it into a FIPS node only", n.cfg.RestoreBlob, b.Header.BackupID)
	case !b.Header.FIPS && n.cfg.Device.FIPS:
		return false, fmt.Errorf("node: restore from %s: backup %s is of a non-FIPS cluster; restore it into a non-FIPS node only", n.cfg.RestoreBlob, b.Header.BackupID)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return false, fmt.Errorf("node: restore: %w", err)
	}
	if err := n.buildRestoredStore(ctx, tmp, b); err != nil {
		return false, err
	}
	if err := durable.SyncDir(tmp); err != nil {
		return false, fmt.Errorf("node: restore: %w", err)
	}
	// An empty data directory (made by whoever set the node up) is
	// replaced; one holding anything else is not ours to overwrite.
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("node: restore: data dir %s is not empty and has no store: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return false, fmt.Errorf("node: restore: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(dir)); err != nil {
		return true, fmt.Errorf("node: restore: %w", err)
	}
	n.log.Info("restored the store from a backup", "backup", b.Header.BackupID,
		"source_cluster", b.Header.SourceClusterID, "records", b.Header.Records, "taken", b.Header.Created)
	return true, nil
}

// buildRestoredStore makes a store in dir holding b's masking key and records.
func (n *Node) buildRestoredStore(ctx context.Context, dir string, b *backup.Backup) error {
	keyPath := filepath.Join(dir, NodeKeyFile)
	if err := store.CreateNodeKey(keyPath); err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	st, err := store.Open(ctx, store.Config{
		Path: filepath.Join(dir, StoreFile), NodeKeyPath: keyPath, Node: n.cfg.NodeID, Now: n.cfg.Now, Logger: n.log,
	})
	if err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	defer st.Close()
	mk := b.MaskingKey()
	err = st.SetMaskingKey(ctx, mk)
	clear(mk)
	if err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	if want := b.Header.MKCheck; len(want) != 0 {
		got, err := st.MaskingKeyCheck()
		if err != nil {
			return fmt.Errorf("node: restore: %w", err)
		}
		if string(got) != string(want) {
			return fmt.Errorf("node: restore: the masking key does not match the blob's MK check: %w", backup.ErrRefused)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recs := make(chan store.Sealed, restoreWorkers)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		applyErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { applyErr = err; cancel() })
	}
	for range restoreWorkers {
		wg.Go(func() {
			for rec := range recs {
				if _, err := st.Apply(ctx, rec); err != nil {
					fail(fmt.Errorf("node: restore: record %s %q: %w", rec.Kind, rec.ID, err))
					return
				}
			}
		})
	}
	readErr := b.Records(ctx, func(rec store.Sealed) error {
		// A link is an agreement between two clusters, made by each side's
		// admins with their quorum: a cluster made from a backup is not the
		// cluster that agreed, and starts with no links (its admins make
		// the ones it should have).
		if rec.Kind == store.KindSetting && rec.ID == hsm.LinksSettingsID {
			return nil
		}
		select {
		case recs <- rec:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(recs)
	wg.Wait()
	if applyErr != nil {
		return applyErr
	}
	if readErr != nil {
		return fmt.Errorf("node: restore from %s: %w", n.cfg.RestoreBlob, readErr)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("node: restore: %w", err)
	}
	return nil
}
