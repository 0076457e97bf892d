package user

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func remove(env *cli.Env) *cobra.Command {
	var username, role, approval string
	var force bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a user (admins only)",
		Long: `Delete a user. --role must be the user's role (as ` + "`user list`" + ` shows it).
The HSM refuses to delete a crypto user that owns keys (they would become
unusable) or an admin when fewer than the quorum value + 2 admins would
remain, unless --force is given. Guarded by the user-management quorum.`,
	}
	userFlags(cmd, &username, &role, "the user's role: admin or crypto-user")
	approvalFlag(cmd, &approval)
	cmd.Flags().BoolVar(&force, "force", false, "delete even a crypto user that owns keys, or one of the last admins")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		if err := checkUser(ctx, s, username, role); err != nil {
			return nil, err
		}
		ap, err := cli.LoadApprovals(approval)
		if err != nil {
			return nil, err
		}
		if err := s.DeleteUser(ctx, username, force, ap); err != nil {
			return nil, err
		}
		return Result{Username: username, Role: role}, nil
	})
	return cli.Leaf(cmd, `  coffer cli user delete --username alice --role crypto-user
  coffer cli user delete --username bob --role crypto-user --approval user-token.json`)
}

// checkUser refuses a --role that is not the user's, so that a command
// means what it says. A user the list lacks is left to the HSM to refuse.
func checkUser(ctx context.Context, s *client.Session, username, role string) error {
	if err := cli.CheckRole(role); err != nil {
		return err
	}
	users, err := s.ListUsers(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.Username == username && u.Role != role {
			return cli.Usagef("the role of %s is %s, not %s", username, u.Role, role)
		}
	}
	return nil
}
