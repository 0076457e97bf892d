package tree

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coffer-hsm/coffer/internal/cli"
)

// findCommand walks args (the words after `cli`) down from c the way they
// name commands, skipping flags and their values. It returns the deepest
// command named and, when a word names no subcommand of a group, that word.
// cobra parses a group's flags before it fails on an unknown subcommand, so
// a typo (key generate-symetric aes --label x) would read as an unknown
// flag (--label) without this.
func findCommand(c *cobra.Command, args []string) (*cobra.Command, string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") {
			if name, ok := strings.CutPrefix(a, "--"); ok {
				name, _, hasValue := strings.Cut(name, "=")
				f := lookupFlag(c, name)
				if f == nil {
					break // an unknown flag: cobra names it, and what follows may be its value
				}
				if !hasValue && f.NoOptDefVal == "" {
					i++ // the flag's value
				}
			}
			continue
		}
		if !c.HasSubCommands() {
			break // a leaf's argument: the leaf says what is wrong with it
		}
		sub := childNamed(c, a)
		if sub == nil {
			return c, a
		}
		c = sub
	}
	return c, ""
}

func childNamed(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name || s.HasAlias(name) {
			return s
		}
	}
	return nil
}

// lookupFlag finds a flag of c or one it inherits, before cobra has merged
// them.
func lookupFlag(c *cobra.Command, name string) *pflag.Flag {
	for ; c != nil; c = c.Parent() {
		if f := c.Flags().Lookup(name); f != nil {
			return f
		}
		if f := c.PersistentFlags().Lookup(name); f != nil {
			return f
		}
	}
	return nil
}

// unknownCommand is the usage error for word, which names no subcommand of
// group, with cobra's suggestions of what was meant.
func unknownCommand(env *cli.Env, group *cobra.Command, word string) error {
	var where, how string
	switch {
	case group.Name() == "cli" && env.Interactive:
		how = "`help` lists the commands"
	case group.Name() == "cli":
		how = "`coffer cli --help` lists the commands"
	case env.Interactive:
		where = fmt.Sprintf(" for %q", shellPath(group))
		how = fmt.Sprintf("`%s` lists its commands", helpFor(env, group))
	default:
		where = fmt.Sprintf(" for %q", group.CommandPath())
		how = fmt.Sprintf("`%s` lists its commands", helpFor(env, group))
	}
	mean := ""
	if group.SuggestionsMinimumDistance <= 0 {
		group.SuggestionsMinimumDistance = 2 // cobra's default, which only its own lookup sets
	}
	if s := group.SuggestionsFor(word); len(s) > 0 {
		mean = fmt.Sprintf(" did you mean %q?", strings.Join(s, `" or "`))
	}
	return cli.Usagef("unknown command %q%s:%s %s", word, where, mean, how)
}

// shellPath is c's path as typed in the shell: without `coffer cli`.
func shellPath(c *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), "coffer cli"), " ")
}

// helpFor is the command line that shows c's help.
func helpFor(env *cli.Env, c *cobra.Command) string {
	if env.Interactive {
		return strings.TrimSpace("help " + shellPath(c))
	}
	return c.CommandPath() + " --help"
}

// loginFlags are the flags that log in, which single-command mode takes
// before the command only: several commands (user create, user delete,
// login) have flags of the same names that mean another user.
var loginFlags = []string{"username", "role", "password"}

// flagError explains a flag cobra could not parse on cmd.
func flagError(env *cli.Env, cmd *cobra.Command, err error) error {
	name, unknown := strings.CutPrefix(err.Error(), "unknown flag: --")
	if unknown {
		for _, l := range loginFlags {
			if name != l {
				continue
			}
			if env.Interactive {
				return cli.Usagef("%v: in the shell, log in first with `login --username NAME --role admin|crypto-user`; `%s` shows the command's flags", err, helpFor(env, cmd))
			}
			return cli.Usagef("%v: the login flags (--username, --role, --password) go before the command: `coffer cli --username NAME --role ROLE %s ...`; `%s` shows the command's flags", err, shellPath(cmd), helpFor(env, cmd))
		}
	}
	return cli.Usagef("%v: `%s` shows the flags", err, helpFor(env, cmd))
}

// help is `help [COMMAND...]`: the help of the tree, or of a command.
func help(env *cli.Env) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Show the help of the CLI or of a command",
		Long:  "Show the help of the CLI, or of the command named (help key generate-symmetric).",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, word := findCommand(cmd.Parent(), args)
			if word != "" {
				return unknownCommand(env, target, word)
			}
			return target.Help()
		},
	}
}
