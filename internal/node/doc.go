// Package node is one Coffer HSM on the network: it wires the device
// (internal/hsm), its sealed store (internal/store), its audit log
// (internal/audit) and server-side synchronization (internal/peersync), and
// serves the HSM and Peer services of proto/hsmv1 over gRPC on TLS 1.3, with
// health, readiness and Prometheus metrics over HTTP on loopback.
//
// # What it owns
//
//   - The node's lifecycle (New, Run, Close): the data directory (hsm.db,
//     node.key, audit.log), the masking key's origin (created here, cloned
//     from a peer, or already in the store), the refusal to join a cluster
//     whose masking key differs, and an orderly shutdown.
//   - The mapping of every HSM RPC to the device API, the one table that turns
//     device refusals into gRPC statuses (errors.go), request validation and
//     panic recovery.
//   - Client sessions as the wire sees them: unguessable 64-bit handles mapped
//     to device sessions, each good only on the connection that opened it
//     and closed with it, after SessionIdleTimeout without use, or, not
//     logged in, after ClientLimits.AnonymousSessionTimeout; quotas per
//     connection and per client address (sessions.go).
//   - What unauthenticated network clients can spend (conns.go, logins.go):
//     connections per address, streams per connection, and logins paced per
//     address (a token bucket, one at a time, a growing pause after
//     failures) before any password is hashed.
//   - Client-side synchronization (min_nodes): a new token object is pushed to
//     peers before the answer, and removed again if too few stored it.
//   - Client mutual TLS (clienttls.go): client certificates of the cluster's
//     registered trust anchors are admitted at the handshake besides node
//     certificates, and while the device's enforcement level is "cluster"
//     HSM RPCs without one are refused.
//   - Backups (operator.go, restore.go): the Operator service's Backup, served
//     only to a caller presenting this node's own node certificate, streams
//     a blob (internal/backup) of every record sealed under the fleet
//     backup key (Config.BackupKeyPath); a MasterKeyRestore node with no
//     store builds one from a verified blob beside the data directory and
//     renames it into place.
//   - The Peer service (Hello, Push, Digest, Versions, Fetch, Clone) for
//     authorized nodes of the same cluster, and a peersync.Peer over gRPC for
//     each configured peer.
//
// # Must not import
//
// Nothing above it: no client, cryptoki, cli or cmd packages, and not
// internal/pki (the caller builds TLS configurations and AuthorizePeer).
package node
