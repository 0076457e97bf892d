package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/client"
)

// Need says what a command needs before it runs.
type Need int

const (
	// NeedNothing: the command works offline, or connects by itself.
	NeedNothing Need = iota + 1
	// NeedSession: a logged-in session (in single-command mode the login
	// is implicit, with Env.Creds).
	NeedSession
)

// Action is what a command does; it returns the data to print.
type Action func(ctx context.Context, s *client.Session) (any, error)

// Run returns a cobra RunE that gets what the command needs, runs act and
// prints its result. Its errors are *Error with the exit code they give.
func Run(env *Env, need Need, act Action) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		var s *client.Session
		if need == NeedSession {
			var err error
			if s, err = env.Session(ctx); err != nil {
				return err
			}
		}
		data, err := act(ctx, s)
		if err != nil {
			return Failed(err)
		}
		return env.Print(data)
	}
}

// Change is Run for a command that changes the cluster (users, keys,
// quorum values): after it succeeds it waits until the change has reached
// every HSM (Settle), so that the next command sees it wherever it runs.
func Change(env *Env, need Need, act Action) func(*cobra.Command, []string) error {
	return Run(env, need, func(ctx context.Context, s *client.Session) (any, error) {
		data, err := act(ctx, s)
		if err == nil {
			env.Settle(ctx)
		}
		return data, err
	})
}

// Leaf makes cmd a command that runs: it takes no positional arguments and
// has an example (every command must).
func Leaf(cmd *cobra.Command, example string) *cobra.Command {
	cmd.Args = cobra.NoArgs
	cmd.Example = example
	return cmd
}

// Group makes a command that only groups others: alone it prints its help,
// with an unknown subcommand it is a usage error.
func Group(use, short string, children ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs}
	g.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return Usagef("unknown command %q for %q: `%s --help` lists its commands", args[0], cmd.CommandPath(), cmd.CommandPath())
		}
		return cmd.Help()
	}
	g.AddCommand(children...)
	return g
}

// IsMultiValue reports whether a flag takes several space-separated values
// after one flag name, as the CloudHSM CLI's filters and attribute lists do
// (--filter attr.label=k attr.class=secret-key).
func IsMultiValue(name string) bool {
	switch name {
	case "filter", "key-filter", "payload-filter", "wrapping-filter",
		"attributes", "public-attributes", "private-attributes", "share-crypto-users":
		return true
	}
	return false
}

// MultiFlag registers a multi-value flag; name must be one IsMultiValue
// knows (the tree's tests check).
func MultiFlag(cmd *cobra.Command, p *[]string, name, usage string) {
	cmd.Flags().StringArrayVar(p, name, nil, usage+" (several values after one flag)")
}

// Enum declares the values a flag takes, for completion.
func Enum(cmd *cobra.Command, name string, values ...string) {
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
}

// ExpandArgs turns "--filter a b --x" into "--filter a --filter b --x" for
// the multi-value flags, which cobra takes one value at a time.
func ExpandArgs(args []string) []string {
	out := make([]string, 0, len(args))
	multi, pending := "", false
	for _, a := range args {
		if multi != "" && !strings.HasPrefix(a, "-") {
			out = append(out, "--"+multi, a)
			pending = false
			continue
		}
		if pending {
			out = append(out, "--"+multi) // no value: let the parser say so
		}
		multi, pending = "", false
		if name, ok := strings.CutPrefix(a, "--"); ok && !strings.Contains(name, "=") && IsMultiValue(name) {
			multi, pending = name, true
			continue
		}
		out = append(out, a)
	}
	if pending {
		out = append(out, "--"+multi)
	}
	return out
}
