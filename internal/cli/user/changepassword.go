package user

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func changePassword(env *cli.Env) *cobra.Command {
	var username, role, password, approval string
	cmd := &cobra.Command{
		Use:   "change-password",
		Short: "Change a user's password",
		Long: `Change a password. Any user may change its own; an admin may change another
user's, which also unlocks it (guarded by the user-management quorum).`,
	}
	userFlags(cmd, &username, &role, "the user's role: admin or crypto-user")
	cmd.Flags().StringVar(&password, "password", "", "the new password, 7 to 32 characters (asked for if not given)")
	approvalFlag(cmd, &approval)
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		if err := setPassword(ctx, env, s, username, role, password, approval); err != nil {
			return nil, err
		}
		return Result{Username: username, Role: role}, nil
	})
	return cli.Leaf(cmd, `  coffer cli user change-password --username alice --role crypto-user
  coffer cli user change-password --username bob --role crypto-user --approval user-token.json`)
}

func setPassword(ctx context.Context, env *cli.Env, s *client.Session, username, role, password, approval string) error {
	if username != s.Username() {
		if err := checkUser(ctx, s, username, role); err != nil {
			return err
		}
	} else if err := cli.CheckRole(role); err != nil {
		return err
	}
	ap, err := cli.LoadApprovals(approval)
	if err != nil {
		return err
	}
	pw, err := env.NewPassword(password)
	if err != nil {
		return err
	}
	return s.ChangePassword(ctx, username, pw, ap)
}
