// Package peersync keeps the record stores of a cluster's HSMs converged:
// server-side key synchronization.
//
// # What it owns
//
//   - Push. A local write is announced with Syncer.Notify; a sender per peer
//     coalesces the announced keys, exports each record as it is now and
//     pushes batches, retrying with backoff while the peer is down. The queue
//     per peer is bounded: when it overflows it is dropped (and logged) and
//     anti-entropy repairs what it held. Notify never blocks.
//   - Client-side sync. Syncer.Replicate pushes one record to every peer at
//     once and returns when enough of them stored it.
//   - Anti-entropy. Every Config.Interval the syncer compares digests with
//     each peer: the keys are spread over buckets (Bucket), a bucket's digest
//     is SHA-256 over its sorted (kind, id, version, tombstone) tuples, and
//     for buckets that differ both sides' versions are listed. What the peer
//     has newer, or we lack, is fetched and applied; what we have newer, or
//     the peer lacks, is pushed. One round with a peer repairs both sides.
//   - Readiness. After Run starts, the first round pulls from every
//     reachable peer before Ready reports true.
//   - Tombstone purge. A tombstone older than Config.TombstoneTTL is purged
//     once every peer, in one round where all peers answered, has it at the
//     same version or has no record of the key at all (it purged it already).
//     An expired tombstone is not shipped to a peer that lacks the key, so
//     purged tombstones do not bounce back. TombstoneTTL must exceed the
//     longest time a write can stay in flight between two nodes.
//
// Versions are the store's hybrid-logical-clock versions; the store applies
// last-writer-wins (store.Store.Apply) and checks that every record opens
// under the cluster masking key. This package only moves sealed records and
// never sees a payload in clear.
//
// # Wire stability
//
// Bucket and the digest encoding are compared across nodes, possibly across
// software versions during an upgrade: never change them.
//
// # Must not import
//
// internal/hsm, gRPC or net. Peers are reached through the Peer interface
// (implemented over gRPC by internal/node, in memory by the memnet
// sub-package for tests).
package peersync
