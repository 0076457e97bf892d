package controlplane

import "context"

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
	MaskingKey  string // create | clone
	FIPS        bool
	// ClusterCertificate (with any intermediates) and TrustAnchor are the
	// PEM of InitializeCluster.
	ClusterCertificate string
	TrustAnchor        string
}

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
