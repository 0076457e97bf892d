package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/coffer-hsm/coffer/internal/bench"
	"github.com/coffer-hsm/coffer/internal/cli"
)

const benchUsage = `usage: coffer bench [--ops LIST] [--threads LIST] [--duration D] [--token-keys] [--hold-keys N] [--json] [--compare FILE]
                    [--cluster-config FILE] [--cluster-id ID] [--username NAME] [--password PW]
       coffer bench --pkcs11 LIBRARY --pin PIN [--slot N] [...]
       coffer bench --list

Measures what a cluster sustains: each operation at each thread count for
--duration, reporting operations per second, latency percentiles of the
operations that succeeded, and errors. By default it runs through Coffer's
Go client, logged in as a crypto user with the configuration of coffer cli
(--cluster-config, else COFFER_CLI_CONFIG, else the default path; the user
from --username, COFFER_CLI_USERNAME or CLOUDHSM_PIN; the password from
--password, COFFER_CLI_PASSWORD or CLOUDHSM_PIN, else asked). With --pkcs11
it loads any PKCS#11 library instead (Coffer's, SoftHSMv2's, another HSM's)
and logs in as CKU_USER with --pin (or COFFER_BENCH_PIN), one session per
thread.

The keys the sign and encrypt operations use are session objects, or token
objects with --token-keys; they are destroyed when the operation's cells
end, as are the keys the generations make, also on Ctrl-C. With
--hold-keys N it first makes N token AES keys and holds them through every
cell, destroying them at the end: how cost grows with the keys a cluster
holds. Every object is labelled coffer-bench. The exit status is 1 if any operation failed.

Example: coffer bench --ops ecdsa-p256,aes256-gcm-1k --threads 1,8 --duration 3s --token-keys
`

func runBench(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ops := fs.String("ops", strings.Join(bench.DefaultOps(), ","), "operations, comma-separated, or all (see --list)")
	threads := fs.String("threads", "1,8,64", "thread counts, comma-separated: each operation runs at each")
	duration := fs.Duration("duration", 5*time.Second, "how long each cell (an operation at a thread count) runs")
	opTimeout := fs.Duration("op-timeout", 10*time.Second, "the bound of one operation")
	tokenKeys := fs.Bool("token-keys", false, "the sign and encrypt operations use token keys (on every HSM) instead of session keys")
	holdKeys := fs.Int("hold-keys", 0, "make this many token AES keys before the first cell and hold them through the run")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	compare := fs.String("compare", "", "an earlier run's --json output: print this run's ratios to it")
	list := fs.Bool("list", false, "list the operations and exit")
	module := fs.String("pkcs11", "", "measure this PKCS#11 library instead of the cluster of coffer cli's configuration")
	pin := fs.String("pin", "", "with --pkcs11: the user PIN (Coffer: USER:PASSWORD; default COFFER_BENCH_PIN)")
	slot := fs.String("slot", "", "with --pkcs11: the slot ID (default: the first slot with an initialized token)")
	clusterConfig := fs.String("cluster-config", "", "coffer cli's cluster configuration (default: COFFER_CLI_CONFIG, else the default path)")
	clusterID := fs.String("cluster-id", "", "the cluster, when the configuration names several")
	username := fs.String("username", "", "the crypto user (default: COFFER_CLI_USERNAME, else CLOUDHSM_PIN's)")
	password := fs.String("password", "", "the crypto user's password (default: COFFER_CLI_PASSWORD, else CLOUDHSM_PIN's, else asked)")
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		printFlags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *list {
		for _, o := range bench.Ops() {
			fmt.Fprintf(stdout, "%-20s %s\n", o.Name, o.Desc)
		}
		return nil
	}
	cfg := bench.Config{Duration: *duration, OpTimeout: *opTimeout, TokenKeys: *tokenKeys, HoldKeys: *holdKeys}
	var err error
	if cfg.Ops, err = bench.ParseOps(strings.Split(*ops, ",")); err != nil {
		return fmt.Errorf("--ops: %w", err)
	}
	if cfg.Threads, err = parseThreads(*threads); err != nil {
		return fmt.Errorf("--threads: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var earlier *bench.Report
	if *compare != "" {
		if earlier, err = bench.ReadReport(*compare); err != nil {
			return fmt.Errorf("--compare: %w", err)
		}
	}
	if *module == "" {
		for _, name := range []string{"pin", "slot"} {
			if flagSet(fs, name) {
				return fmt.Errorf("--%s is for --pkcs11", name)
			}
		}
	} else {
		for _, name := range []string{"cluster-config", "cluster-id", "username", "password"} {
			if flagSet(fs, name) {
				return fmt.Errorf("--%s is for the cluster; --pkcs11 takes --pin", name)
			}
		}
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cfg.Progress = progressLine(stderr)
	}
	// Ctrl-C and SIGTERM end the run cleanly, whoever called run: the keys
	// it made are destroyed and the cells done so far reported.
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	var target bench.Target
	if *module != "" {
		p := bench.PKCS11Config{Path: *module, PIN: *pin}
		if p.PIN == "" {
			p.PIN = os.Getenv("COFFER_BENCH_PIN")
		}
		if p.PIN == "" {
			return errors.New("--pkcs11 needs --pin (or COFFER_BENCH_PIN)")
		}
		if *slot != "" {
			n, err := strconv.ParseUint(*slot, 10, 32)
			if err != nil {
				return fmt.Errorf("--slot %q: want a slot ID", *slot)
			}
			s := uint(n)
			p.Slot = &s
		}
		t, err := bench.OpenPKCS11(p)
		if err != nil {
			return err
		}
		defer t.Close()
		target = t
	} else {
		env := &cli.Env{
			In: stdin, Out: stdout, Err: stderr, Getenv: os.Getenv, Format: cli.JSON,
			Logger:       slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			ReadPassword: passwordReader(stdin, stderr),
			ConfigPath:   *clusterConfig, ClusterID: *clusterID,
		}
		defer env.Close(context.WithoutCancel(ctx))
		creds := cli.Credentials{Username: *username, Role: cli.RoleCryptoUser, Password: *password}
		if creds.Username == "" {
			creds.Username = os.Getenv(cli.EnvUsername)
		}
		if creds.Password == "" && creds.Username == os.Getenv(cli.EnvUsername) {
			creds.Password = os.Getenv(cli.EnvPassword)
		}
		if creds, err = cli.WithCloudHSMEnv(creds, os.Getenv); err != nil {
			return err
		}
		if creds.Username == "" {
			return errors.New("no crypto user: pass --username (or set COFFER_CLI_USERNAME or CLOUDHSM_PIN)")
		}
		env.Creds = creds
		cl, err := env.Cluster(ctx)
		if err != nil {
			return err
		}
		s, err := env.Session(ctx)
		if err != nil {
			return err
		}
		target = &bench.ClientTarget{Cluster: cl, Session: s, Name: *clusterID}
	}

	report := bench.NewReport(time.Now(), target.Describe(ctx), cfg)
	cells, runErr := bench.Run(ctx, target, cfg)
	if cfg.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	report.Cells = append(report.Cells, cells...)
	report.Complete = runErr == nil
	if *asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if earlier != nil {
		w := stdout
		if *asJSON {
			w = stderr // stdout is the JSON alone
		}
		if err := bench.WriteComparison(w, report, earlier); err != nil {
			return err
		}
	}
	if runErr != nil {
		return runErr
	}
	var failed uint64
	for _, c := range cells {
		failed += c.Errors
	}
	if failed > 0 {
		return fmt.Errorf("bench: %d operations failed", failed)
	}
	return nil
}

// parseThreads parses a comma-separated list of thread counts.
func parseThreads(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers, comma-separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// progressLine rewrites one terminal line with the running cell's state.
func progressLine(w io.Writer) func(bench.Progress) {
	return func(p bench.Progress) {
		rate := 0.0
		if s := p.Elapsed.Seconds(); s > 0 {
			rate = float64(p.Ops) / s
		}
		threads := "threads"
		if p.Threads == 1 {
			threads = "thread"
		}
		fmt.Fprintf(w, "\r\033[K[%d/%d] %s, %d %s: %.1fs of %.1fs, %d ops, %.0f ops/s, %d errors",
			p.Cell, p.Cells, p.Op, p.Threads, threads, min(p.Elapsed, p.Duration).Seconds(), p.Duration.Seconds(), p.Ops, rate, p.Errors)
	}
}
