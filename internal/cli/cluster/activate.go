package cluster

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Activated is the result of `cluster activate`.
type Activated struct {
	Username  string `json:"username"`
	Role      string `json:"role"`
	Activated bool   `json:"activated"`
}

func activate(env *cli.Env) *cobra.Command {
	var password string
	cmd := &cobra.Command{
		Use:   "activate",
		Short: "Activate a new cluster: set the admin's password",
		Long: `Activate a new cluster. Its first user is the pre-admin "admin" with the
password "password" (CloudHSM's PRECO); activating sets that admin's own
password, after which other users can be created and log in. Unless you are
logged in as the pre-admin already, this logs in as admin/password for you.`,
	}
	cmd.Flags().StringVar(&password, "password", "", "the admin's new password, 7 to 32 characters (asked for if not given)")
	cmd.RunE = cli.Change(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		implicit := false
		_, _, loggedIn := env.LoggedIn()
		var s *client.Session
		var err error
		if loggedIn || !env.Interactive && env.Creds.Username != "" {
			s, err = env.Session(ctx)
		} else {
			s, err = env.Login(ctx, cli.Credentials{Username: cli.PreAdminName, Role: cli.RoleAdmin, Password: cli.PreAdminPassword})
			if client.Code(err) == ck.CKR_PIN_INCORRECT {
				err = &cli.Error{Code: cli.ExitFailed, Err: err,
					Hint: "the pre-admin's default password no longer works: the cluster is probably activated already"}
			}
			implicit = true
		}
		if err != nil {
			return nil, err
		}
		pw, err := env.NewPassword(password)
		if err != nil {
			return nil, err
		}
		if err := s.Activate(ctx, pw); err != nil {
			return nil, err
		}
		// HSMs other than the one that activated keep the pre-admin's
		// sessions as they were: log in again, or log out if this
		// command logged in.
		if implicit {
			if _, err := env.Logout(ctx); err != nil {
				return nil, err
			}
		} else if err := env.Relogin(ctx, pw); err != nil {
			return nil, err
		}
		return Activated{Username: cli.PreAdminName, Role: cli.RoleAdmin, Activated: true}, nil
	})
	return cli.Leaf(cmd, `  coffer cli cluster activate
  coffer cli cluster activate --password 'Adm1n-passw0rd'`)
}
