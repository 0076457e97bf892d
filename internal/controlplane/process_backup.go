package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-hsm/coffer/internal/durable"
)

// Backups on the Processes provisioner. The HSM-side tools do the work:
// `coffer hsm backup` asks the node (with its own node certificate) for a
// blob sealed under the backup key, `coffer hsm restore-cluster` verifies
// one and writes the new cluster's key and CSR. This code moves the sealed
// blob between them and the caller's writer or reader; it never opens the
// backup key.

// backupTimeout bounds one backup or restore tool run.
const backupTimeout = 10 * time.Minute

// exitRefused is the exit status of `coffer hsm restore-cluster` for a
// blob it refuses.
const exitRefused = 3

// restoreBlobName is the blob a restoring node starts from, in its HSM dir.
const restoreBlobName = "restore.blob"

// Backup implements Provisioner.
func (p *Processes) Backup(ctx context.Context, spec NodeSpec, backupID string, w io.Writer) (BackupInfo, error) {
	dir := p.hsmDir(spec.HSMRef)
	tmp, err := os.CreateTemp(dir, "backup-*.blob")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("controlplane: backup: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	out, err := p.runToolFor(ctx, backupTimeout, "hsm", "backup", "--config", filepath.Join(dir, configName),
		"--backup-id", backupID, "--cluster-dir", p.clusterDir(spec.ClusterRef), "--sealing-key", "-", "--out", tmp.Name())
	if err != nil {
		return BackupInfo{}, err
	}
	var res struct {
		Records int   `json:"records"`
		Bytes   int64 `json:"bytes"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return BackupInfo{}, fmt.Errorf("coffer hsm backup: unexpected output %q", truncate(string(out), 200))
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return BackupInfo{}, fmt.Errorf("controlplane: backup: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(w, f)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("controlplane: backup: %w", err)
	}
	if n != res.Bytes {
		return BackupInfo{}, fmt.Errorf("controlplane: backup: copied %d bytes, the tool wrote %d", n, res.Bytes)
	}
	return BackupInfo{Records: res.Records, Bytes: n}, nil
}

// RestoreCluster implements Provisioner.
func (p *Processes) RestoreCluster(ctx context.Context, ref ClusterRef, boundID string, blob io.Reader) (_ RestoredCluster, err error) {
	dir := p.clusterDir(ref)
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	tmp, err := os.CreateTemp(p.cfg.Dir, "restore-*.blob")
	if err != nil {
		return RestoredCluster{}, fmt.Errorf("controlplane: restore: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, blob)
	if err := errors.Join(err, tmp.Close()); err != nil {
		return RestoredCluster{}, fmt.Errorf("controlplane: restore: %w", err)
	}
	out, err := p.runToolFor(ctx, backupTimeout, "hsm", "restore-cluster", "--dir", dir, "--backup-key", p.cfg.BackupKeyPath,
		"--backup-id", boundID, "--blob", tmp.Name(), "--sealing-key", "-")
	if te, ok := errors.AsType[*toolError](err); ok {
		if ee, ok := errors.AsType[*exec.ExitError](te.err); ok && ee.ExitCode() == exitRefused {
			return RestoredCluster{}, fmt.Errorf("%w: %s", ErrBackupRefused, strings.TrimPrefix(te.stderr, "backup refused: "))
		}
	}
	if err != nil {
		return RestoredCluster{}, err
	}
	var res struct {
		SourceClusterID    string `json:"source_cluster_id"`
		ClusterCSR         string `json:"cluster_csr"`
		ClusterCertificate string `json:"cluster_certificate"`
		TrustAnchor        string `json:"trust_anchor"`
		Activated          bool   `json:"activated"`
		FIPS               bool   `json:"fips"`
		Created            string `json:"created"`
		NextNodeID         uint32 `json:"next_node_id"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.ClusterCSR == "" || res.NextNodeID == 0 {
		return RestoredCluster{}, fmt.Errorf("coffer hsm restore-cluster: unexpected output %q", truncate(string(out), 200))
	}
	created, err := time.Parse(time.RFC3339Nano, res.Created)
	if err != nil {
		return RestoredCluster{}, fmt.Errorf("coffer hsm restore-cluster: created %q: %w", res.Created, err)
	}
	return RestoredCluster{
		SourceClusterID: res.SourceClusterID, ClusterCSR: res.ClusterCSR, ClusterCertificate: res.ClusterCertificate,
		TrustAnchor: res.TrustAnchor, Activated: res.Activated, FIPS: res.FIPS, Created: created, NextNodeID: res.NextNodeID,
	}, nil
}

// writeRestoreBlob puts the blob a restoring node starts from in its HSM
// directory, durably, while the node has no store yet; once it has one the
// blob is no longer needed and is removed.
func (p *Processes) writeRestoreBlob(ctx context.Context, dir string, src *RestoreSource) error {
	path := filepath.Join(dir, restoreBlobName)
	if fileExists(filepath.Join(dir, "data", "hsm.db")) {
		// Restored: the node renames its store into place only whole, and
		// with a store it never reads the blob again.
		os.Remove(path)
		return nil
	}
	if fileExists(path) {
		return nil
	}
	if src.Open == nil {
		return errors.New("controlplane: restore: the backup has no blob to open")
	}
	rc, err := src.Open(ctx)
	if err != nil {
		return fmt.Errorf("controlplane: restore: open the backup: %w", err)
	}
	defer rc.Close()
	if _, err := durable.WriteFrom(path, rc, 0o600); err != nil {
		return fmt.Errorf("controlplane: restore: write the backup: %w", err)
	}
	return nil
}
