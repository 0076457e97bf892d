// Package cryptoki is PKCS#11 in pure Go over the cluster client: slots (one
// per configured cluster), tokens, sessions and their login state, the
// handle tables, object search, attribute reads with PKCS#11's rules,
// single- and multi-part operation state and the two-call buffer convention.
// The cgo boundary (cmd/libcoffer_pkcs11) converts C structures to the types
// here and back, and nothing else; everything it calls returns a ck.RV.
//
// Login. PKCS#11 login is per application and token: the first C_Login
// opens one client.Session on the slot's cluster (CKU_USER as a crypto user
// with the PIN "username:password", as CloudHSM does; CKU_SO as an admin), and
// every PKCS#11 session of the slot uses it until C_Logout or until the last
// session closes.
//
// Handles. Session and object handles come from one counter (Handles) that
// the caller keeps for the life of the process: a handle is never reused,
// even across Close and New. An object handle names a cluster object id on
// one slot; only handles given out by this Module are accepted.
//
// Operations. C_*Init records the mechanism and key without a round trip;
// a single-part call is then one request (Encrypt, Sign, ...), and the first
// C_*Update begins a multi-part client.Operation. A result computed for a
// length query or a too-small buffer is kept until the caller fetches it, so
// the operation is not run twice.
//
// Package cryptoki imports internal/client and internal/ck, never cgo, the
// device (internal/hsm), the node, the store or the control plane
// (internal/layers_test.go checks).
package cryptoki
