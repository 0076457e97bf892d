package user

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func create(env *cli.Env) *cobra.Command {
	var username, role, password, approval string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a user (admins only)",
		Long: `Create an admin or a crypto user. Admins manage users and quorum; crypto
users own and use keys. The password is asked for unless --password is given.
When the user-management quorum value is above 1, pass --approval with a
signed quorum token.`,
	}
	userFlags(cmd, &username, &role, "admin or crypto-user")
	cmd.Flags().StringVar(&password, "password", "", "the new user's password, 7 to 32 characters (asked for if not given)")
	approvalFlag(cmd, &approval)
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		if err := cli.CheckRole(role); err != nil {
			return nil, err
		}
		ap, err := cli.LoadApprovals(approval)
		if err != nil {
			return nil, err
		}
		pw, err := env.NewPassword(password)
		if err != nil {
			return nil, err
		}
		if err := s.CreateUser(ctx, username, role, pw, ap); err != nil {
			return nil, err
		}
		return Result{Username: username, Role: role}, nil
	})
	return cli.Leaf(cmd, `  coffer cli user create --username alice --role crypto-user
  coffer cli user create --username admin2 --role admin --approval user-token.json`)
}
