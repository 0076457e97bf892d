// Package shell is the interactive `coffer cli`: it reads command lines,
// runs each with the command tree, and keeps the login between them. On a
// terminal it edits lines with golang.org/x/term (history, kept in a file
// without lines that hold a password, and tab completion driven by the
// command tree) and shows who is logged in in the prompt; otherwise it
// reads lines plainly, so that it can be scripted.
//
// It reaches the cluster only through package cli; it must not import the
// command groups or the tree (the tree hands itself over as a Tree).
package shell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/coffer-hsm/coffer/internal/cli"
)

// Tree is what the shell needs of the command tree.
type Tree struct {
	// Execute runs one command line and returns its exit code.
	Execute func(ctx context.Context, env *cli.Env, args []string) int
	// CLI builds the tree for completion.
	CLI func(env *cli.Env) *cobra.Command
}

// Prompt is the prompt for env: coffer> , or coffer(alice:crypto-user)> ;
// with several clusters configured, the cluster of the last command too:
// coffer@cluster-a> , coffer(alice:crypto-user@cluster-a)> .
func Prompt(env *cli.Env) string {
	at := ""
	if id := env.PromptCluster(); id != "" {
		at = "@" + id
	}
	if u, role, ok := env.LoggedIn(); ok {
		return fmt.Sprintf("coffer(%s:%s%s)> ", u, role, at)
	}
	return "coffer" + at + "> "
}

// Banner is the shell's first line on a terminal.
const Banner = "Coffer CLI: `help` lists the commands, `help COMMAND` explains one, Tab completes; `quit` or Ctrl-D leaves."

// Run reads command lines from env.In until end of input, `quit` or `exit`,
// and runs them. It returns the last command's exit code. If env.Creds name
// a user, it logs in first.
func Run(ctx context.Context, env *cli.Env, t Tree) int {
	env.Interactive = true
	defer env.Close(context.WithoutCancel(ctx))
	in, inOK := env.In.(*os.File)
	out, outOK := env.Out.(*os.File)
	var lines lineReader
	if inOK && outOK && term.IsTerminal(int(in.Fd())) && term.IsTerminal(int(out.Fd())) {
		lines = newTerminal(env, in, out, t)
		fmt.Fprintln(out, Banner) // a person reads it; a script's output stays clean
	} else {
		lines = newPlain(env)
	}
	last := cli.ExitOK
	if env.Creds.Username != "" {
		if _, err := env.Login(ctx, env.Creds); err != nil {
			last = env.PrintError(err)
		}
	}
	base := env.Format
	for ctx.Err() == nil {
		words, err := readCommand(env, lines)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			last = env.PrintError(cli.Usagef("%v", err))
			continue
		}
		if len(words) == 0 {
			continue
		}
		if words[0] == "quit" || words[0] == "exit" {
			break
		}
		env.Format = base
		last = t.Execute(ctx, env, words)
	}
	env.Format = base
	return last
}

// lineReader reads one line, showing prompt if it is a terminal.
type lineReader interface {
	readLine(prompt string) (string, error)
}

// readCommand reads a command, going on to the next lines while the line
// ends inside quotes or with a backslash.
func readCommand(env *cli.Env, lines lineReader) ([]string, error) {
	text, err := lines.readLine(Prompt(env))
	if err != nil {
		return nil, err
	}
	for {
		words, err := splitWords(text)
		if !errors.Is(err, errIncomplete) {
			return words, err
		}
		more, err := lines.readLine("> ")
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the input ended inside quotes or after a backslash")
		}
		if err != nil {
			return nil, err
		}
		text += "\n" + more
	}
}

// plain reads lines from a non-terminal; a password is the next line.
type plain struct {
	r *bufio.Reader
}

func newPlain(env *cli.Env) *plain {
	p := &plain{r: bufio.NewReader(env.In)}
	env.ReadPassword = func(string) (string, error) { return p.readLine("") }
	env.ConfirmPasswords = false
	return p
}

func (p *plain) readLine(string) (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// terminal edits lines on a terminal, in raw mode while reading only.
type terminal struct {
	fd int
	t  *term.Terminal
}

func newTerminal(env *cli.Env, in, out *os.File, tree Tree) *terminal {
	tt := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{in, out}, "")
	tt.History = loadHistory(historyPath(env.Getenv))
	if w, h, err := term.GetSize(int(out.Fd())); err == nil && w > 0 && h > 0 {
		_ = tt.SetSize(w, h)
	}
	tt.AutoCompleteCallback = func(line string, pos int, key rune) (string, int, bool) {
		if key != '\t' {
			return "", 0, false
		}
		newLine, newPos, list := complete(tree.CLI(env), line, pos)
		if len(list) > 0 {
			fmt.Fprintln(tt, strings.Join(list, "  "))
		}
		return newLine, newPos, true
	}
	fd := int(in.Fd())
	env.ReadPassword = func(prompt string) (string, error) {
		fmt.Fprint(env.Err, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(env.Err)
		return string(b), err
	}
	env.ConfirmPasswords = true
	return &terminal{fd: fd, t: tt}
}

func (t *terminal) readLine(prompt string) (string, error) {
	t.t.SetPrompt(prompt)
	state, err := term.MakeRaw(t.fd)
	if err != nil {
		return "", err
	}
	defer func() { _ = term.Restore(t.fd, state) }()
	line, err := t.t.ReadLine()
	if errors.Is(err, term.ErrPasteIndicator) {
		return line, nil
	}
	return line, err
}
