package shell

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
)

func TestRunPlain(t *testing.T) {
	in := strings.NewReader(`key list
# comment

login --username alice \
  --role crypto-user
the-password
key list --output table
quit
never run
`)
	var out bytes.Buffer
	env := &cli.Env{In: in, Out: &out, Err: &out, Format: cli.JSON}
	var ran [][]string
	var formats []cli.Format
	tree := Tree{
		Execute: func(_ context.Context, env *cli.Env, args []string) int {
			ran = append(ran, args)
			formats = append(formats, env.Format)
			if args[0] == "login" {
				pw, err := env.ReadPassword("Enter password: ")
				if err != nil || pw != "the-password" {
					t.Errorf("password %q, %v", pw, err)
				}
				env.Format = cli.Table // a command's --output lasts one line
			}
			return len(ran)
		},
		CLI: func(*cli.Env) *cobra.Command { return &cobra.Command{} },
	}
	code := Run(context.Background(), env, tree)
	want := [][]string{{"key", "list"}, {"login", "--username", "alice", "--role", "crypto-user"}, {"key", "list", "--output", "table"}}
	if !slices.EqualFunc(ran, want, slices.Equal) {
		t.Fatalf("ran %q, want %q", ran, want)
	}
	if !slices.Equal(formats, []cli.Format{cli.JSON, cli.JSON, cli.JSON}) {
		t.Errorf("formats %v", formats)
	}
	if code != 3 || !env.Interactive {
		t.Errorf("code %d, interactive %v", code, env.Interactive)
	}
	if strings.Contains(out.String(), "coffer>") || strings.Contains(out.String(), Banner) {
		t.Errorf("a prompt or the banner on plain input: %q", out.String())
	}
}

func TestRunIncompleteInput(t *testing.T) {
	var out bytes.Buffer
	env := &cli.Env{In: strings.NewReader("key list --filter 'attr.label=x\nmore\n"), Out: &out, Err: &out, Format: cli.JSON}
	code := Run(context.Background(), env, Tree{
		Execute: func(context.Context, *cli.Env, []string) int { t.Error("ran an incomplete command"); return 0 },
		CLI:     func(*cli.Env) *cobra.Command { return &cobra.Command{} },
	})
	if code != cli.ExitUsage || !strings.Contains(out.String(), "the input ended inside quotes or after a backslash") {
		t.Errorf("code %d, output %q", code, out.String())
	}
}

func TestPrompt(t *testing.T) {
	if p := Prompt(&cli.Env{}); p != "coffer> " {
		t.Errorf("prompt %q", p)
	}
}
