// Package bench measures what a cluster (or any PKCS#11 token) sustains:
// operations per second and latency percentiles for a list of operations at
// a list of thread counts, each cell run for a fixed duration. It is the
// engine of `coffer bench`.
//
// The operations (Ops) are described once, by mechanism and key, and run
// against a Target: the Coffer Go client (ClientTarget) or a PKCS#11 module
// (OpenPKCS11, cgo only). A Target makes the keys an operation needs as
// session objects, or as token objects when asked, and destroys what it made
// when the operation's cells are done, also when the run is cancelled.
package bench
