package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/cli/tree"
)

//go:generate go run . cli docs --path ../../docs/cli.md

// runCLI runs `coffer cli ARGS`: one command, or the shell without one. Its
// result or error is printed already; the error it returns carries only the
// exit code.
func runCLI(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error {
	env := &cli.Env{
		In: stdin, Out: stdout, Err: stderr, Getenv: os.Getenv, Format: cli.JSON,
		Logger:           slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		ReadPassword:     passwordReader(stdin, stderr),
		ConfirmPasswords: term.IsTerminal(int(stdin.Fd())),
	}
	code := tree.Execute(ctx, env, args)
	env.Close(context.WithoutCancel(ctx))
	if code != cli.ExitOK {
		return cli.ExitStatus(code)
	}
	return nil
}

// passwordReader asks for a password on the terminal without echo, or
// reads it as the next line of standard input when that is not a terminal.
func passwordReader(stdin *os.File, stderr io.Writer) func(string) (string, error) {
	var lines *bufio.Reader
	return func(prompt string) (string, error) {
		if term.IsTerminal(int(stdin.Fd())) {
			fmt.Fprint(stderr, prompt)
			b, err := term.ReadPassword(int(stdin.Fd()))
			fmt.Fprintln(stderr)
			return string(b), err
		}
		if lines == nil {
			lines = bufio.NewReader(stdin)
		}
		line, err := lines.ReadString('\n')
		if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
			return "", fmt.Errorf("no password on standard input: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
}

// exitCode reports err on stderr, unless it was reported already, and
// returns the process's exit code.
func exitCode(err error, stderr io.Writer) int {
	var st cli.ExitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	if !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "coffer:", err)
	}
	return 1
}
