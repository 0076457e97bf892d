// Package backup is the format of a Coffer backup blob: what an HSM of a
// cluster writes when the control plane asks for a backup, and what the
// first HSM of a cluster made from that backup reads back. It is pure: it
// reads and writes bytes and knows nothing of nodes, networks or stores
// beyond the encoding of a sealed store record.
//
// # Key hierarchy
//
// The store's records are sealed under the cluster masking key (MK); the
// blob carries them exactly as store.Sealed marshals them. The MK itself,
// and optionally the cluster's private key (PKCS#8), are sealed with
// AES-256-GCM under a wrapping key derived from the fleet backup key, a
// 32-byte secret that HSM nodes hold and the control plane does not. The
// blob never holds a key in the clear. Every key of a blob is derived with
// HKDF-SHA256 from the backup key, a random per-blob salt, and an info
// naming the key's use and the backup id:
//
//	wrap  = HKDF(backup key, salt, "coffer backup v1 wrap\x00"  || backup id)  AES-256-GCM key
//	mac   = HKDF(backup key, salt, "coffer backup v1 mac\x00"   || backup id)  HMAC-SHA256 key
//	check = HKDF(backup key, salt, "coffer backup v1 check\x00" || backup id)  16 bytes, in the header
//
// # Format (version 1)
//
// All integers are big-endian.
//
//	preamble  "COFFERBK" | version u8 (1)
//	header    length u32 | salt [32] | key check [16] | backup id (u16 len) |
//	          source cluster id (u16 len) | created unix ns i64 | node id u32 |
//	          MK check (u16 len) | flags u8 (bit 0 FIPS, bit 1 activated) |
//	          cluster certificate PEM (u32 len) | trust anchor PEM (u32 len) |
//	          cluster CSR PEM (u32 len) | record count u64
//	mk        length u32 | AES-256-GCM(wrap, nonce random; AD "mk\x00" || preamble || header)
//	cluster   length u32 (0: absent) | AES-256-GCM(wrap; AD "cluster key\x00" || preamble || header)
//	records   count times: length u32 | store.Sealed.MarshalBinary
//	trailer   "COFFEREN" | total length u64 | HMAC-SHA256(mac, every byte before the tag)
//
// # Reading
//
// Open authenticates the whole blob before it returns anything: the
// preamble, the backup id the blob is bound to, the key check, the trailer,
// the HMAC over everything, then the structure, every record's encoding
// and the record count. Records reads the blob again, hashing as it goes,
// and fails at the end if the bytes changed since Open: a caller that
// applies records into a temporary store and keeps it only when Records
// returns nil never keeps anything unauthenticated. A refused blob gives a
// *RefusedError (errors.Is ErrRefused) whose Reason says what is wrong.
//
// # Must not import
//
// Nothing of Coffer but internal/store (for the record encoding); no net.
package backup
