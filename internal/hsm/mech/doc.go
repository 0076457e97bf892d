// Package mech implements the cryptographic mechanisms of the Coffer HSM
// device: AES (ECB, CBC, CBC-PAD, CTR, GCM, key wrap RFC 3394 and RFC 5649,
// CMAC), HMAC and SHA digests, RSA (PKCS #1 v1.5, PSS, OAEP), ECDSA and ECDH
// on P-256/P-384/P-521, Ed25519, ML-DSA (FIPS 204) and ML-KEM (FIPS 203),
// PKCS #8 / SPKI key encodings and the known-answer self-tests.
//
// It works on plain Go types (cipher.Block, *rsa.PrivateKey,
// *ecdsa.PrivateKey, ed25519.PrivateKey, crypto.Hash, byte slices) and knows
// nothing of PKCS #11 objects, attributes or constants: the device package
// (internal/hsm) resolves objects, policy and mechanism parameters, then calls
// this package and maps its sentinel errors to CKR codes.
//
// It calls only the standard library's crypto packages (and
// golang.org/x/crypto/cryptobyte for ASN.1), so the backend is a build
// choice: native Go, its FIPS 140-3 module, or GOEXPERIMENT=boringcrypto.
// Constructions the standard library does not offer (ECB over blocks, key
// wrap, CMAC, counter-width checks for CTR) are built on cipher.Block.
//
// It must not import other Coffer packages, net, cgo or anything that does
// I/O; it holds no global mutable state and starts no goroutines.
//
// Conventions:
//   - The AES functions (ECB, CBC, CBC-PAD, CTR, GCM, key wrap, Multipart),
//     Digest and SumMAC append their output to dst and return the extended
//     slice, like cipher.AEAD.Seal, so a caller can reuse buffers. To reuse
//     the input's storage pass src[:0] as dst; otherwise dst's spare capacity
//     must not overlap src. Multipart.Update is the exception: its dst must
//     not overlap src at all. RSA and signature functions return new slices.
//   - Randomness: since Go 1.26 the standard library draws key generation and
//     signature randomness from its own secure source and ignores the reader
//     it is given (unless GODEBUG=cryptocustomrand=1). Functions here still
//     take an io.Reader where the standard library does, pass it through, and
//     treat nil as crypto/rand.Reader. Pass crypto/rand.Reader (or nil) in
//     production: any other reader disables the BoringCrypto fast path and is
//     refused in FIPS 140-only mode. Tests get determinism from
//     testing/cryptotest.SetGlobalRandom.
//   - Self-tests: SelfTest runs every known-answer test once per call and is
//     meant to be called by the device at start-up (and refuse to serve if it
//     fails). Key generation always runs a pairwise consistency test.
//   - FIPS 140-only mode (GODEBUG=fips140=only): where the standard library
//     would panic (SHA-1, raw PKCS #1 v1.5 signatures, short HMAC keys) this
//     package refuses first; where it returns an error (GCM with a caller's
//     IV, PKCS #1 v1.5 encryption, PSS salts longer than the hash) the error
//     wraps ErrParam. SelfTest passes in that mode (skipping GCM). The unit
//     tests target native Go and GODEBUG=fips140=on.
package mech
