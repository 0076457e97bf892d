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
// gating the cryptography, and enforced: the standard library refuses what
// the module does not approve (the device already refuses every mechanism
// FIPS mode does not allow; AES-GCM under a caller's IV is refused for
// encryption there, so the HSM chooses every IV).
const fipsGODEBUG = "fips140=only"

// ensureFIPSModule makes a FIPS-mode HSM's process run in a FIPS 140-3
// module: a BoringCrypto build, or a process where Go's module is enforced,
// goes on. A GODEBUG that already names fips140 otherwise (fips140=on
// included: the module, not enforced) is refused (node.ErrNoFIPSModule);
// the operator asked for it. Otherwise the process starts itself again
// with fips140=only added to GODEBUG (also a build whose default is
// fips140=on, GOFIPS140): the mode can be set only at a process's start.
// exec returns only if that fails.
func ensureFIPSModule(cb cryptobackend.Info, environ []string, stderr io.Writer,
	exec func(argv0 string, argv, envv []string) error) error {
	if cb.FIPSModeReady() {
		return nil
	}
	godebug, env := takeEnv(environ, "GODEBUG")
	if slices.ContainsFunc(strings.Split(godebug, ","), func(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), "fips140=") }) {
		return fmt.Errorf("%w; GODEBUG=%s asks otherwise: leave fips140 out of it, or set fips140=only", node.ErrNoFIPSModule, godebug)
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
