// Package client is the Coffer cluster client: what the PKCS#11 module and the
// CLI use to reach the HSMs of one cluster.
//
// A Cluster keeps one multiplexed gRPC connection (TLS, verified against the
// customer's trust anchor) to every HSM and spreads operations over the HSMs
// that are up by least outstanding requests, ties broken at random.
//
// Errors. A refusal by an HSM (a gRPC status carrying an ErrorInfo of domain
// "coffer.hsm") is an *Error with its PKCS#11 return value; it is never
// retried. Any other failure is a transport failure: the HSM is marked down.
// Operations that only read or compute (Sign, Verify, Encrypt, Decrypt,
// Digest, WrapKey, GenerateRandom, FindObjects, GetAttributes, ObjectInfo,
// ExportPublicKey, Mechanisms, the List* calls and Begin) are then retried on
// another HSM with jittered exponential backoff, so the caller sees no failure
// while one HSM holding the key is up. Operations that change state (creation,
// destruction, attribute changes, sharing, user and quorum management,
// Update/Finish/Abort of a multi-part operation) are not resent once they may
// have reached an HSM: they fail with an *UnknownOutcomeError (errors.Is
// ErrOutcomeUnknown) naming that HSM. Nothing is resent blindly: a request
// that never left (the HSM was already down, or opening the session there
// failed) simply goes to another HSM.
//
// Recovery (seed 003). A background goroutine owned by the Cluster probes every
// down HSM each ReconnectInterval, up to ReconnectAttempts times (-1: forever,
// 0: never); once an HSM answers it is used again. A Session logs in once per
// HSM: at Login on every HSM that is up, and lazily, before first use, on an
// HSM that came back. To do that the Session keeps the user's password in
// memory, and only for that; Session.Close wipes it.
//
// Client-side key synchronization (seed 002). Creation calls carry min_nodes,
// the larger of Config.CreateObjectMinimumNodes and the call's MinNodes
// option; the HSM answers once that many HSMs hold the new object, and names
// them (stored_on). The client routes later operations on a fresh token
// object only to those HSMs until FreshObjectWindow has passed or an HSM
// proves otherwise (it lists the object or uses it), so a key is usable
// immediately after it is created even with min_nodes 1. An object whose
// attributes or sharing this client changed is routed the same way to the HSM
// that made the change, and FindObjects also asks the HSMs holding fresh
// objects the first HSM may lack. Session objects exist on one HSM only:
// operations on them always go there, and fail with
// CKR_OBJECT_HANDLE_INVALID once that HSM's session is lost. Quorum tokens
// live on the HSM that issued them: requests carrying approvals go there.
//
// Package client imports internal/ck and proto/hsmv1, never the device
// (internal/hsm), the store, the node or peersync.
package client
