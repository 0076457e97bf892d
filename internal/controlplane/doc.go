// Package controlplane is Coffer's control plane: the AWS cloudhsmv2 API
// (AWS JSON 1.1, X-Amz-Target BaldrApiService.<Operation>) over HTTP with
// SigV4 signatures, the lifecycle of clusters, HSMs and backups in several
// regions, their state in a bbolt database, and the provisioning of HSM
// nodes through a Provisioner (by default, child `coffer hsm` processes on
// their own loopback addresses).
//
// # What it owns
//
//   - One file per API operation (op_*.go), one table that turns domain
//     errors into AWS error shapes (errors.go), SigV4 verification (sigv4.go).
//   - The state machine: a cluster goes CREATE_IN_PROGRESS → UNINITIALIZED
//     (once its first HSM made the cluster key and the ClusterCsr) →
//     INITIALIZE_IN_PROGRESS (InitializeCluster accepted the customer's
//     certificate) → INITIALIZED (every HSM's node runs and is ready) →
//     ACTIVE (the pre-admin activated the cluster); DELETE_IN_PROGRESS →
//     DELETED. An HSM goes CREATE_IN_PROGRESS → ACTIVE, DEGRADED while its
//     node is down and being restarted, DELETE_IN_PROGRESS → gone. The
//     reconciler (reconcile.go) moves them; API calls only record intent.
//   - Addresses: a region's subnets map to availability zones (Config); each
//     HSM gets its own ENI address, a loopback address 127.<region>.<n>.<11+az>
//     (127.0.0.11 is the first HSM of AZ "a" in the first region).
//
// # Trust boundary
//
// The cluster key is made and kept on the HSM side (Provisioner.ClusterKey:
// `coffer hsm cluster-key` in a directory the control plane never reads);
// the control plane stores only the CSR and public certificates. Node
// certificates are issued on the HSM side too (`coffer hsm issue-cert`).
// The HSM side keeps the cluster key sealed under a sealing key that only
// the control plane holds and passes to those tools on stdin (Processes),
// so neither side's directory alone gives the key.
//
// Where Coffer does better than the real service (ARCHITECTURE.md): a
// CreateHsm on a cluster that is not initialized yet is accepted (the HSM
// joins at initialization), and the ClusterCsr stays the same when the first
// HSM is deleted and replaced before initialization (the cluster key is
// cluster-scoped on the HSM side, not HSM-scoped).
//
// Backups (backups.go, blobstore*.go): a backup is taken by an HSM of the
// cluster (Provisioner.Backup) and streamed into the region's BlobStore (a
// directory, or an S3-compatible bucket); it is READY once stored durably.
// The blob is encrypted and authenticated by the HSM side under a backup
// key the control plane never holds: the control plane moves blobs, keeps
// their records, applies retention, and has the HSM side verify a blob
// (Provisioner.RestoreCluster) before it makes a cluster from it.
//
// # Must not import
//
// The device, the store, the node, peersync, the client, the CLI or cmd
// (internal/hsm, internal/store, internal/node, internal/peersync,
// internal/client, internal/cli, cmd/...). It uses internal/pki to verify
// InitializeCluster's certificates and internal/audit to read whether a
// node's cluster was activated.
package controlplane
