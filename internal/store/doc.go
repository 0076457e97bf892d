// Package store is an HSM node's durable, sealed record store: one embedded
// bbolt database per node holding token objects, users and cluster settings.
//
// # What it owns
//
//   - Records. A record is (Kind, ID, Version, Tombstone, payload). The payload
//     is sealed with AES-256-GCM under a record key derived (HKDF-SHA256) from
//     the cluster masking key (MK). Metadata (kind, id, version, tombstone)
//     stays readable so that replication can compare digests without keys;
//     payloads never appear in clear on disk.
//   - The masking key, sealed with AES-256-GCM under the node key, a 32-byte
//     file that only the node's user may read (see CreateNodeKey).
//   - Node-local values (PutLocal, GetLocal): small named values of this node
//     alone, such as the audit log's anchor, sealed under the node key and
//     never replicated.
//   - The hybrid logical clock (Clock) that versions local writes.
//
// # Record format (version 1)
//
//	off  len  field
//	0    1    format version (1)
//	1    1    kind (1 object, 2 user, 3 setting)
//	2    1    flags (bit 0: tombstone; other bits must be zero)
//	3    8    version wall time, unix nanoseconds, big-endian int64
//	11   4    version logical counter, big-endian
//	15   4    version node id, big-endian
//	19   2    id length n, big-endian, 1..MaxIDLen
//	21   n    id
//	21+n      box: 12-byte random nonce || ciphertext || 16-byte tag
//
// The associated data of the box is the header, bytes [0, 21+n): a record
// copied to another id, given another version, kind or tombstone flag, or
// edited in any byte fails to open and is reported as a *CorruptError. A
// tombstone's box seals an empty payload, so peers can check that a deletion
// was made by a holder of the same MK.
//
// # Durability
//
// Put, Delete, Apply and PurgeTombstone return only after their bbolt
// transaction has committed with fsync. Concurrent writers share one
// transaction and one fsync (group commit, see committer). Random nonces
// limit one MK to 2^32 seals over the cluster's life.
//
// # Must not import
//
// No net (replication lives in internal/peersync and talks to the store
// through Export, Apply and Versions), and nothing from internal/hsm: the
// store knows payloads only as opaque bytes.
package store
