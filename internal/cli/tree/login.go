package tree

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// LoggedIn is the result of `login` and `logout`.
type LoggedIn struct {
	Username string `json:"username"`
	Role     string `json:"role"`
}

func login(env *cli.Env) *cobra.Command {
	var c cli.Credentials
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to the cluster",
		Long: `Log in as an admin (manages users and quorum) or a crypto user (owns and uses
keys). The password is asked for unless --password is given. In the shell the
login lasts until ` + "`logout`" + `; on the command line it only checks the
credentials (each command logs in by itself there). After 5 failed logins in
a row (the HSM's default) a user is locked until an admin unlocks it.`,
	}
	cmd.Flags().StringVar(&c.Username, "username", "", "the user")
	cmd.Flags().StringVar(&c.Role, "role", "", "admin or crypto-user")
	cmd.Flags().StringVar(&c.Password, "password", "", "the password (asked for if not given)")
	_ = cmd.MarkFlagRequired("username")
	_ = cmd.MarkFlagRequired("role")
	cli.Enum(cmd, "role", cli.RoleAdmin, cli.RoleCryptoUser)
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		if _, err := env.Login(ctx, c); err != nil {
			return nil, err
		}
		return LoggedIn{Username: c.Username, Role: c.Role}, nil
	})
	return cli.Leaf(cmd, `  coffer cli login --username alice --role crypto-user
  login --username admin --role admin          (in the shell)`)
}

func logout(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Log out of the cluster",
		Long:  `Log out: close the session on every HSM. Session keys made in it are gone.`,
	}
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, _ *client.Session) (any, error) {
		_, role, _ := env.LoggedIn()
		u, err := env.Logout(ctx)
		if err != nil {
			return nil, err
		}
		return LoggedIn{Username: u, Role: role}, nil
	})
	return cli.Leaf(cmd, `  logout          (in the shell)`)
}
