package key

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Shared is the result of `key share` and `key unshare`.
type Shared struct {
	KeyReference string   `json:"key-reference"`
	Username     string   `json:"username"`
	SharedUsers  []string `json:"shared-users"`
}

func share(env *cli.Env) *cobra.Command {
	return sharing(env, true)
}

// sharing builds `key share` (on) and `key unshare`.
func sharing(env *cli.Env, on bool) *cobra.Command {
	var filter []string
	var username, role string
	cmd := &cobra.Command{
		Use:   "share",
		Short: "Share a key with another crypto user (its owner only)",
		Long: `Share the one key --filter selects with another crypto user, who may then use
it (sign, encrypt...) as its attributes allow, but not delete, export, wrap or
share it. Only the key's owner may share; only token keys are shared.`,
	}
	example := `  coffer cli key share --filter attr.label=aes256 --username bob --role crypto-user`
	if !on {
		cmd.Use, cmd.Short = "unshare", "Stop sharing a key with a crypto user (its owner only)"
		cmd.Long = `Stop sharing the one key --filter selects with a crypto user. Only the key's owner may.`
		example = `  coffer cli key unshare --filter attr.label=aes256 --username bob --role crypto-user`
	}
	filterFlag(cmd, &filter, "filter", "the key")
	cmd.Flags().StringVar(&username, "username", "", "the crypto user")
	cmd.Flags().StringVar(&role, "role", cli.RoleCryptoUser, "the user's role: keys are shared with crypto users only")
	_ = cmd.MarkFlagRequired("username")
	cli.Enum(cmd, "role", cli.RoleCryptoUser)
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		if role != cli.RoleCryptoUser {
			return nil, cli.Usagef("--role %q: keys are shared with crypto users only", role)
		}
		id, err := findKey(ctx, s, "filter", filter)
		if err != nil {
			return nil, err
		}
		if on {
			err = s.ShareKey(ctx, id, username)
		} else {
			err = s.UnshareKey(ctx, id, username)
		}
		if err != nil {
			return nil, err
		}
		info, err := s.ObjectInfo(ctx, id)
		if err != nil {
			return nil, err
		}
		users := info.SharedWith
		if users == nil {
			users = []string{}
		}
		return Shared{KeyReference: cli.KeyRef(id), Username: username, SharedUsers: users}, nil
	})
	return cli.Leaf(cmd, example)
}
