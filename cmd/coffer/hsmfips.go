package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	"github.com/coffer-hsm/coffer/internal/node"
)

// fipsGODEBUG is what a FIPS-mode HSM adds to GODEBUG when it starts again:
// Go's FIPS 140-3 module in FIPS mode from the start, its self-tests
// gating the cryptography. "only" would also make the standard library
// refuse what the module does not approve; the device already refuses
// every mechanism FIPS mode does not allow, and parts of TLS and of the
// device's own records are not written for "only" yet.
const fipsGODEBUG = "fips140=on"

// ensureFIPSModule makes a FIPS-mode HSM's process run in a FIPS 140-3
// module. A BoringCrypto build, or a process already in Go's FIPS 140-3
// mode, goes on. Otherwise, unless GODEBUG already says what fips140 should
// be (then the node refuses to start, node.ErrNoFIPSModule), the process
// starts itself again with fips140=on added to GODEBUG: the mode can be set
// only at a process's start. exec returns only if that fails.
func ensureFIPSModule(cb cryptobackend.Info, environ []string, stderr io.Writer,
	exec func(argv0 string, argv, envv []string) error) error {
	if cb.FIPSModule() {
		return nil
	}
	godebug, env := takeEnv(environ, "GODEBUG")
	if slices.ContainsFunc(strings.Split(godebug, ","), func(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), "fips140=") }) {
		return fmt.Errorf("%w; GODEBUG=%s asks for no FIPS 140-3 mode: leave fips140 out of it, or set fips140=on", node.ErrNoFIPSModule, godebug)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%w; cannot start again in FIPS 140-3 mode: %w", node.ErrNoFIPSModule, err)
	}
	if godebug != "" {
		godebug += ","
	}
	godebug += fipsGODEBUG
	fmt.Fprintf(stderr, "FIPS-mode HSM on crypto %s: starting again with GODEBUG=%s (Go's FIPS 140-3 module)\n", cb, godebug)
	err = exec(exe, os.Args, append(env, "GODEBUG="+godebug))
	return fmt.Errorf("%w; start again in FIPS 140-3 mode: %w", node.ErrNoFIPSModule, err)
}

// takeEnv returns the value of name in environ and environ without it.
func takeEnv(environ []string, name string) (string, []string) {
	var value string
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			value = v
			continue
		}
		out = append(out, kv)
	}
	return value, out
}

// execSelf replaces the process (syscall.Exec).
func execSelf(argv0 string, argv, envv []string) error { return syscall.Exec(argv0, argv, envv) }
