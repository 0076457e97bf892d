// Package cli is the shared core of `coffer cli`, Coffer's version of the
// CloudHSM CLI: the Env a command runs in (the cluster configuration, the
// connection, the logged-in session, input and output), results printed as
// {"error_code": 0, "data": ...} JSON or as tables, errors that say what to
// do next and which exit code they give, key filters (attr.NAME=VALUE and
// key-reference=0x...), the key attribute names, and quorum token files.
//
// The commands live in one package per command group below this one
// (cluster, user, quorum, key, crypto), one file per verb; package tree
// assembles them into the command tree and package shell runs the
// interactive shell over it.
//
// Package cli and the packages below it reach the HSMs only through
// internal/client and speak PKCS#11 through internal/ck. They must not
// import the device (internal/hsm), the node, the store or peersync.
package cli
