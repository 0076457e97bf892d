package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	"github.com/coffer-hsm/coffer/internal/hsm/mech"
)

// runHSMSelfTest runs the device's known-answer and consistency tests in
// this binary, on its crypto backend, without a config or a store: what
// `hsm run` runs before it serves, for an operator checking a build.
func runHSMSelfTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hsm selftest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, "usage: coffer hsm selftest\n") }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("hsm selftest takes no arguments")
	}
	cb := cryptobackend.Current()
	if err := mech.SelfTest(); err != nil {
		return fmt.Errorf("crypto %s: %w", cb, err)
	}
	fmt.Fprintf(stdout, "self-test passed (crypto %s)\n", cb)
	return nil
}
