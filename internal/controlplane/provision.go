package controlplane

import (
	"context"
	"errors"
	"io"
	"time"
)

// Provisioner runs HSMs: the HSM side of the trust boundary. The control
// plane tells it what should run; it never hands the control plane a key.
type Provisioner interface {
	// ClusterKey makes the cluster key pair on the HSM side the first time
	// it is called for a cluster, and returns the cluster's CSR and an HSM
	// certificate on its key naming hsmID. Later calls return the same CSR
	// (the key is cluster-scoped, so replacing the first HSM before
	// initialization keeps the ClusterCsr).
	ClusterKey(ctx context.Context, ref ClusterRef, hsmID string) (ClusterKeyResult, error)
	// Ensure makes the HSM's node run as spec says: issues its node
	// certificate on first use, starts it, restarts it if it died, and
	// restarts it with a new configuration when spec changed and
	// allowRestart is set.
	Ensure(ctx context.Context, spec NodeSpec, allowRestart bool) (NodeStatus, error)
	// Activated reports whether the cluster of the node spec names was
	// activated (its pre-admin set a password), as far as that node knows.
	Activated(ctx context.Context, spec NodeSpec) (bool, error)
	// Backup asks the running node spec names for a backup of its cluster,
	// bound to backupID, and writes the blob to w; it returns once all of it
	// was written. The blob is encrypted and authenticated with the backup
	// key, which only the HSM side holds.
	Backup(ctx context.Context, spec NodeSpec, backupID string, w io.Writer) (BackupInfo, error)
	// RestoreCluster verifies blob end to end as the backup boundID (the id it
	// was made under; for a copy, the id of the backup it was copied from,
	// transitively) with the backup key, and prepares the HSM side of the new
	// cluster ref from it (its cluster key and CSR). A blob it refuses gives an
	// error wrapping ErrBackupRefused whose message names what is wrong; on any
	// error nothing of ref's HSM side is left.
	RestoreCluster(ctx context.Context, ref ClusterRef, boundID string, blob io.Reader) (RestoredCluster, error)
	// RemoveHSM stops the HSM's node and removes its store and files.
	RemoveHSM(ctx context.Context, ref HSMRef) error
	// RemoveCluster removes what the HSM side keeps for the cluster (its
	// key), after its HSMs were removed.
	RemoveCluster(ctx context.Context, ref ClusterRef) error
	// Close releases the provisioner; with stopNodes it stops every node
	// it runs, otherwise nodes keep running and are adopted next time.
	Close(ctx context.Context, stopNodes bool) error
}

// ClusterRef names a cluster.
type ClusterRef struct {
	Region    string
	ClusterID string
}

// HSMRef names an HSM.
type HSMRef struct {
	ClusterRef
	HsmID string
}

// ClusterKeyResult is what the first HSM of a cluster publishes.
type ClusterKeyResult struct {
	ClusterCSR     string // PEM
	HsmCertificate string // PEM, self-signed on the cluster key
}

// NodeSpec is everything a node's configuration holds.
type NodeSpec struct {
	HSMRef
	NodeID      uint32
	IP          string // its ENI address
	Port        int    // its HSM port
	MetricsPort int    // /readyz, /metrics
	Peers       []NodePeer
	MaskingKey  string // create | clone | restore
	FIPS        bool
	// ClusterCertificate (with any intermediates) and TrustAnchor are the
	// PEM of InitializeCluster.
	ClusterCertificate string
	TrustAnchor        string
	// Restore is set for the first HSM of a cluster made from a backup
	// (MaskingKey "restore"): the backup its node starts from.
	Restore *RestoreSource
}

// RestoreSource is the backup an HSM's node starts from.
type RestoreSource struct {
	BoundID string // the id the blob is bound to
	// Open returns the blob. Ensure calls it only while the HSM has no
	// store yet.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// BackupInfo describes a blob Backup wrote.
type BackupInfo struct {
	Records int   // store records in it
	Bytes   int64 // its size
}

// RestoredCluster is what a verified backup says of the cluster it came from.
type RestoredCluster struct {
	SourceClusterID    string
	ClusterCSR         string // PEM
	ClusterCertificate string // PEM (with any intermediates, as InitializeCluster had it)
	TrustAnchor        string // PEM
	Activated          bool   // an admin of the backup had activated the cluster
	FIPS               bool
	Created            time.Time // when the backup was taken
	// NextNodeID is the lowest node id no HSM of the backup's lineage has
	// used: the restored cluster's HSMs take ids from it on, so none asks
	// for the masking key under an id the backup records as joined.
	NextNodeID uint32
}

// ErrBackupRefused: a backup blob failed verification (truncated, edited,
// bound to another backup id, wrong backup key, not a backup).
var ErrBackupRefused = errors.New("backup refused")

// NodePeer is another HSM of the cluster.
type NodePeer struct {
	NodeID uint32
	HsmID  string
	Addr   string // ip:port
}

// NodeStatus is what Ensure found and did.
type NodeStatus struct {
	Running bool // a node process runs
	Ready   bool // it answers /readyz
	// Restarted is set when the node had died (or was never seen) and was
	// started again: the HSM is DEGRADED until it is ready.
	Restarted bool
	// PendingRestart is set when the node runs with an older configuration
	// and allowRestart was false.
	PendingRestart bool
	Message        string // why it is not ready, for StateMessage
}
