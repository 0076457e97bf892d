// Command coffer is the Coffer HSM: its subcommands run the parts of a
// cluster and the tools that go with it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
)

// version is set at build time by the Makefile.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) && slices.ContainsFunc(os.Args[1:], isHelpFlag) {
		return // help that was asked for is not a failure
	}
	if err != nil {
		os.Exit(exitCode(err, os.Stderr))
	}
}

func isHelpFlag(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

const usage = `usage: coffer <command> [arguments]

commands:
  version              print the version
  configure cli|pkcs11 write the cluster configuration for coffer cli or the PKCS#11 module
  cli [COMMAND]        manage users, keys and quorum (the CloudHSM CLI's commands)
  hsm init|run         make a cluster's certificates; run an HSM node
  audit verify         check an HSM audit log's chain, MACs and anchor
  controlplane         serve the AWS cloudhsmv2 API and run the HSMs it creates
  up                   a control plane and an activated two-HSM cluster, in the foreground (--detach: in the background)
  down                 stop the coffer up of a data directory and its HSMs
  bench                measure a cluster (or any PKCS#11 module): ops/s and latency per operation and thread count
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "version":
		// The crypto backend is part of the answer: a node built with
		// GOEXPERIMENT=boringcrypto says "boringcrypto", a native one "go"
		// ("go fips140" under GODEBUG=fips140=on or only).
		fmt.Fprintln(stdout, "coffer", version, "crypto", cryptobackend.Current())
		return nil
	case "hsm":
		return runHSM(ctx, args[1:], os.Stdin, stdout, stderr)
	case "audit":
		return runAudit(ctx, args[1:], stdout, stderr)
	case "cli":
		return runCLI(ctx, args[1:], os.Stdin, stdout, stderr)
	case "configure":
		return runConfigure(ctx, args[1:], stdout, stderr)
	case "controlplane":
		return runControlPlane(ctx, args[1:], stdout, stderr)
	case "up":
		return runUp(ctx, args[1:], stdout, stderr)
	case "down":
		return runDown(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
