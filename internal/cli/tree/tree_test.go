package tree

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coffer-hsm/coffer/internal/cli"
)

func testEnv(out *bytes.Buffer, vars map[string]string) *cli.Env {
	return &cli.Env{In: strings.NewReader(""), Out: out, Err: out, Format: cli.JSON,
		Getenv: func(k string) string { return vars[k] }}
}

func leaves(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, s := range c.Commands() {
		if s.HasAvailableSubCommands() {
			out = append(out, leaves(s)...)
		} else if !s.Hidden && s.Name() != "help" {
			out = append(out, s)
		}
	}
	return out
}

func TestEveryCommandIsDocumented(t *testing.T) {
	for _, interactive := range []bool{false, true} {
		env := testEnv(&bytes.Buffer{}, nil)
		env.Interactive = interactive
		c := CLI(env)
		if m := missingExamples(c); len(m) > 0 {
			t.Errorf("commands without an example: %q", m)
		}
		for _, l := range leaves(c) {
			if l.Short == "" || l.Long == "" {
				t.Errorf("%s: no description", l.CommandPath())
			}
			l.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if f.Value.Type() == "stringArray" && !cli.IsMultiValue(f.Name) {
					t.Errorf("%s --%s takes several values, but ExpandArgs does not know it", l.CommandPath(), f.Name)
				}
				if f.Usage == "" {
					t.Errorf("%s --%s: no usage", l.CommandPath(), f.Name)
				}
			})
		}
	}
	ref := string(Reference())
	for _, l := range leaves(New(testEnv(&bytes.Buffer{}, nil)).Commands()[0]) {
		if !strings.Contains(ref, "### "+l.CommandPath()+"\n") {
			t.Errorf("the reference lacks %s", l.CommandPath())
		}
	}
	for _, want := range []string{"| extractable | CKA_EXTRACTABLE |", "## Exit codes", "--cluster-config"} {
		if !strings.Contains(ref, want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}

// TestExecuteOffline runs the commands that need no cluster, and the
// mistakes caught before one is needed.
func TestExecuteOffline(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "approver.key")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "reg.json")
	missing := filepath.Join(dir, "missing.json")
	for _, c := range []struct {
		name string
		args []string
		vars map[string]string
		code int
		want string
	}{
		{"registration token", []string{"quorum", "token-sign", "generate", "--service", "registration", "--token", token}, nil, 0, `"service": "registration"`},
		{"approve it", []string{"quorum", "token-sign", "approve", "--token", token, "--username", "admin2", "--private-key", keyPath}, nil, 0, `"approvals": 1`},
		{"approve needs a key or a signature", []string{"quorum", "token-sign", "approve", "--token", token, "--username", "admin2"}, nil, 2, "at least one of the flags"},
		{"table output", []string{"--output", "table", "quorum", "token-sign", "approve", "--token", token, "--username", "admin3", "--private-key", keyPath}, nil, 0, "approvals: 2"},
		{"help", []string{"key", "list", "--help"}, nil, 0, "Examples:"},
		{"group alone", []string{"crypto"}, nil, 0, "Available Commands:"},
		{"unknown command", []string{"key", "frob"}, nil, 2, `unknown command \"frob\" for \"coffer cli key\"`},
		{"unknown top command", []string{"frob"}, nil, 2, `unknown command \"frob\"`},
		{"unknown flag", []string{"key", "list", "--frob"}, nil, 2, "unknown flag: --frob"},
		{"a typo before flags", []string{"key", "generate-symetric", "aes", "--label", "x"}, nil, 2,
			"unknown command \\\"generate-symetric\\\" for \\\"coffer cli key\\\": did you mean \\\"generate-symmetric\\\"? `coffer cli key --help` lists its commands"},
		{"a typo of a user command", []string{"user", "crate", "--username", "bob", "--role", "crypto-user"}, nil, 2,
			"unknown command \\\"crate\\\" for \\\"coffer cli user\\\": did you mean \\\"create\\\"?"},
		{"a typo of a group", []string{"--cluster-id", "key", "kye", "list"}, nil, 2, "unknown command \\\"kye\\\": did you mean \\\"key\\\"? `coffer cli --help` lists the commands"},
		{"the error code is the exit code", []string{"key", "frob"}, nil, 2, `"error_code": 2`},
		{"login flags after the command", []string{"key", "list", "--username", "bob", "--role", "crypto-user"}, nil, 2,
			"unknown flag: --username: the login flags (--username, --role, --password) go before the command: `coffer cli --username NAME --role ROLE key list ...`"},
		{"an unknown flag in a group", []string{"key", "generate-symmetric", "--lable", "x", "aes"}, nil, 2, "unknown flag: --lable"},
		{"help", []string{"help"}, nil, 0, "Available Commands:"},
		{"help of a command", []string{"help", "key", "generate-symmetric", "aes"}, nil, 0, "coffer cli key generate-symmetric aes --label"},
		{"help of a typo", []string{"help", "key", "lsit"}, nil, 2, "did you mean \\\"list\\\"?"},
		{"required flag", []string{"user", "delete", "--username", "x"}, nil, 2, `required flag(s) \"role\" not set`},
		{"bad output", []string{"--output", "xml", "cluster", "info"}, nil, 2, `--output \"xml\"`},
		{"no configuration", []string{"--cluster-config", missing, "cluster", "info"}, nil, 1, "no cluster configuration at " + missing},
		{"credentials from the environment", []string{"--cluster-config", missing, "key", "list"},
			map[string]string{cli.EnvUsername: "alice", cli.EnvRole: "crypto-user", cli.EnvPassword: "pw-pw-pw"}, 1, "no cluster configuration"},
		{"flags before the environment", []string{"--cluster-config", missing, "--role", "root", "key", "list"},
			map[string]string{cli.EnvUsername: "alice", cli.EnvRole: "crypto-user"}, 2, `role \"root\"`},
		{"no credentials", []string{"--cluster-config", missing, "key", "list"}, nil, 1, "not logged in"},
		{"mtls list needs no login", []string{"--cluster-config", missing, "cluster", "mtls", "list-trust-anchors"}, nil, 1, "no cluster configuration"},
		{"mtls get needs a login", []string{"--cluster-config", missing, "cluster", "mtls", "get-enforcement"}, nil, 1, "not logged in"},
		{"mtls deregister needs a reference or all", []string{"cluster", "mtls", "deregister-trust-anchor"}, nil, 2, "at least one of the flags"},
		{"mtls deregister: reference or all", []string{"cluster", "mtls", "deregister-trust-anchor", "--all", "--certificate-reference", "0x01"}, nil, 2, "none of the others can be"},
		{"user list needs no login", []string{"--cluster-config", missing, "user", "list"}, nil, 1, "no cluster configuration"},
		{"reference-pem", []string{"--cluster-config", missing, "key", "generate-file", "--encoding", "reference-pem", "--path", "x", "--filter", "attr.label=k"},
			map[string]string{cli.EnvUsername: "alice", cli.EnvRole: "crypto-user", cli.EnvPassword: "pw-pw-pw"}, 1, "no cluster configuration"},
		{"docs", []string{"docs"}, nil, 0, "### coffer cli crypto verify ed25519"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			env := testEnv(&out, c.vars)
			code := Execute(context.Background(), env, c.args)
			env.Close(context.Background())
			if code != c.code || !strings.Contains(out.String(), c.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out.String(), c.code, c.want)
			}
		})
	}
}

func TestShellOverPlainInput(t *testing.T) {
	var out bytes.Buffer
	env := testEnv(&out, nil)
	env.In = strings.NewReader("quorum token-sign generate --service registration --token " + filepath.Join(t.TempDir(), "t.json") + "\nlogin --username a --role admin --password p\n")
	env.ConfigPath = filepath.Join(t.TempDir(), "none.json")
	code := Execute(context.Background(), env, []string{"interactive"})
	if code != cli.ExitFailed || !strings.Contains(out.String(), `"service": "registration"`) || !strings.Contains(out.String(), "no cluster configuration") {
		t.Errorf("exit %d, output:\n%s", code, out.String())
	}
}

// TestShellHelpAndMistakes runs the shell over plain input: help works,
// typos and login flags say what to do, with the shell's own words.
func TestShellHelpAndMistakes(t *testing.T) {
	var out bytes.Buffer
	env := testEnv(&out, nil)
	env.In = strings.NewReader("help\nhelp key list\nkey lsit\nkey list --username bob\nkey list --frob\n")
	code := Execute(context.Background(), env, []string{"interactive"})
	for _, want := range []string{
		"Available Commands:", "coffer cli key list [flags]",
		"unknown command \\\"lsit\\\" for \\\"key\\\": did you mean \\\"list\\\"? `help key` lists its commands",
		"unknown flag: --username: in the shell, log in first with `login --username NAME --role admin|crypto-user`; `help key list` shows the command's flags",
		"unknown flag: --frob: `help key list` shows the flags",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the shell's output lacks %q:\n%s", want, out.String())
		}
	}
	if code != cli.ExitUsage || strings.Contains(out.String(), "unknown command \\\"help\\\"") {
		t.Errorf("exit %d, output:\n%s", code, out.String())
	}
}

// missingExamples lists the commands that run but have no example.
func missingExamples(c *cobra.Command) []string {
	var out []string
	for _, s := range c.Commands() {
		if s.HasAvailableSubCommands() {
			out = append(out, missingExamples(s)...)
		} else if !s.Hidden && s.Name() != "help" && s.Example == "" {
			out = append(out, s.CommandPath())
		}
	}
	return out
}
