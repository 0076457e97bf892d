// Package tree assembles the `coffer cli` command tree from the command
// groups (cluster, user, quorum, key, crypto) and the top-level verbs
// (login, logout, interactive, and the hidden docs), runs one command line
// in an Env, and writes the tree's reference (docs/cli.md).
//
// It reaches the cluster only through internal/client, by way of package
// cli.
package tree

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/cli/cluster"
	"github.com/coffer-hsm/coffer/internal/cli/crypto"
	"github.com/coffer-hsm/coffer/internal/cli/key"
	"github.com/coffer-hsm/coffer/internal/cli/quorum"
	"github.com/coffer-hsm/coffer/internal/cli/shell"
	"github.com/coffer-hsm/coffer/internal/cli/user"
)

// Execute runs one command line (the words after `coffer cli`) in env,
// prints its result or error, and returns the exit code.
func Execute(ctx context.Context, env *cli.Env, args []string) int {
	top := New(env)
	args = cli.ExpandArgs(args)
	if group, word := findCommand(top.Commands()[0], args); word != "" {
		return env.PrintError(unknownCommand(env, group, word))
	}
	top.SetArgs(append([]string{"cli"}, args...))
	if err := top.ExecuteContext(ctx); err != nil {
		return env.PrintError(err)
	}
	return cli.ExitOK
}

// New returns the tree: a "coffer" command whose one child is "cli", so
// that every command's path reads as it is typed (coffer cli key list).
func New(env *cli.Env) *cobra.Command {
	top := &cobra.Command{Use: "coffer", SilenceErrors: true, SilenceUsage: true, TraverseChildren: true}
	top.CompletionOptions.DisableDefaultCmd = true
	top.SetIn(env.In)
	top.SetOut(env.Out)
	top.SetErr(env.Err)
	top.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return flagError(env, cmd, err) })
	top.AddCommand(CLI(env))
	return top
}

// CLI returns the `cli` command and everything below it.
func CLI(env *cli.Env) *cobra.Command {
	var output, config, clusterID, username, role, password string
	c := &cobra.Command{
		Use:   "cli",
		Short: "Manage the users, keys and quorum of a Coffer cluster, as the CloudHSM CLI does",
		Long: `The Coffer CLI: the CloudHSM CLI's command tree (cluster, login, user, quorum,
key, crypto) for a Coffer cluster, with the same command names and flags.

With a command it runs that one command (single-command mode): it logs in
first, when the command needs it, as --username with --role (password from
--password, COFFER_CLI_PASSWORD or a prompt), or as COFFER_CLI_USERNAME and
COFFER_CLI_ROLE; what those leave unset comes from CloudHSM CLI's CLOUDHSM_PIN
(username:password) and CLOUDHSM_ROLE. Without a command, or with
` + "`interactive`" + `, it starts a shell with history and tab completion, where
you log in with ` + "`login`" + `. In both,
` + "`help`" + ` lists the commands and ` + "`help COMMAND`" + ` (or COMMAND --help) explains one.
The login flags go before the command (coffer cli --username alice --role
crypto-user key list): some commands have flags of the same names that name
another user (user create --username bob).

The cluster comes from --cluster-config, COFFER_CLI_CONFIG, or the file
` + "`coffer configure cli`" + ` writes ($XDG_CONFIG_HOME/coffer/cli.json, or
~/.config/coffer/cli.json). When the file names several clusters
(` + "`coffer configure cli add-cluster`" + `), --cluster-id picks the one a command runs
on; key replicate and user replicate name theirs with --source-cluster-id and
--destination-cluster-id.

Results are JSON, {"error_code": 0, "data": ...}; a failure prints
{"error_code": 1, "data": "what went wrong; what to do"} and exits with 1, or
{"error_code": 2, ...} and exits with 2 for a usage error or a feature this
cluster does not support: error_code is always the exit code.`,
		Example: `  coffer cli cluster activate
  coffer cli --username admin --role admin user create --username alice --role crypto-user
  COFFER_CLI_USERNAME=alice COFFER_CLI_ROLE=crypto-user coffer cli key list --filter attr.label=aes256
  CLOUDHSM_PIN=alice:password CLOUDHSM_ROLE=crypto-user coffer cli key list
  coffer cli`,
		Args: cobra.ArbitraryArgs,
	}
	c.PersistentFlags().StringVar(&config, "cluster-config", "", "the cluster configuration file (default: COFFER_CLI_CONFIG, then $XDG_CONFIG_HOME/coffer/cli.json)")
	c.PersistentFlags().StringVar(&clusterID, "cluster-id", "", "the cluster to run on, when the configuration names several (coffer configure cli add-cluster)")
	c.PersistentFlags().StringVar(&output, "output", env.Format.String(), "json or table")
	cli.Enum(c, "output", "json", "table")
	if !env.Interactive {
		c.Flags().StringVar(&username, "username", "", "log in as this user before the command (default: COFFER_CLI_USERNAME)")
		c.Flags().StringVar(&role, "role", "", "the user's role: admin or crypto-user (default: COFFER_CLI_ROLE)")
		c.Flags().StringVar(&password, "password", "", "the user's password (default: COFFER_CLI_PASSWORD, else asked for)")
		cli.Enum(c, "role", cli.RoleAdmin, cli.RoleCryptoUser)
	}
	c.PersistentPreRunE = func(*cobra.Command, []string) error {
		f, err := cli.ParseFormat(output)
		if err != nil {
			return err
		}
		env.Format = f
		if env.Interactive {
			env.ClusterID = or(clusterID, env.ShellClusterID) // a line's --cluster-id, else the shell's
		} else {
			env.ClusterID, env.ShellClusterID = clusterID, clusterID
		}
		if config != "" {
			env.ConfigPath = config
		}
		if !env.Interactive {
			creds, err := cli.WithCloudHSMEnv(cli.Credentials{Username: or(username, env.Getenv(cli.EnvUsername)),
				Role: or(role, env.Getenv(cli.EnvRole)), Password: or(password, env.Getenv(cli.EnvPassword))}, env.Getenv)
			if err != nil {
				return err
			}
			env.Creds = creds
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) > 0 && env.Interactive:
			return cli.Usagef("unknown command %q: `help` lists the commands", args[0])
		case len(args) > 0:
			return cli.Usagef("unknown command %q: `coffer cli --help` lists the commands", args[0])
		case env.Interactive:
			return cmd.Help()
		}
		return runShell(cmd.Context(), env)
	}
	c.AddCommand(help(env), login(env), logout(env), cluster.New(env), user.New(env), quorum.New(env), key.New(env), crypto.New(env))
	if !env.Interactive {
		c.AddCommand(interactive(env), docs(env))
	}
	return c
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func interactive(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "interactive",
		Short: "Start the interactive shell",
		Long: `Start a shell that reads commands line by line: tab completes commands, flags and
their values; up and down walk the history (kept in
$XDG_STATE_HOME/coffer/cli_history, without lines that hold a --password);
the prompt shows who is logged in. ` + "`quit`" + ` or Ctrl-D leaves. When input is not a
terminal, lines are read plainly and the shell exits with the last command's
exit code, so it can be scripted.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return runShell(cmd.Context(), env) },
	}
	return cli.Leaf(cmd, `  coffer cli interactive
  coffer cli interactive < commands.txt`)
}

func runShell(ctx context.Context, env *cli.Env) error {
	code := shell.Run(ctx, env, shell.Tree{Execute: Execute, CLI: CLI})
	if code != cli.ExitOK {
		return cli.ExitStatus(code)
	}
	return nil
}
