package quorum

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Deleted is the result of `quorum token-sign delete`.
type Deleted struct {
	Token string `json:"token"`
}

func remove(env *cli.Env) *cobra.Command {
	var tokenPath, id string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Withdraw a quorum token (admins)",
		Long:  `Withdraw an outstanding quorum token, named by its file (--token) or its id (--id, as ` + "`list`" + ` shows it).`,
	}
	cmd.Flags().StringVar(&tokenPath, "token", "", "the quorum token file")
	cmd.Flags().StringVar(&id, "id", "", "the token's id")
	cmd.MarkFlagsOneRequired("token", "id")
	cmd.MarkFlagsMutuallyExclusive("token", "id")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		if tokenPath != "" {
			t, err := cli.ReadTokenFile(tokenPath)
			if err != nil {
				return nil, err
			}
			id = t.Token
		}
		if err := s.DeleteQuorumToken(ctx, id); err != nil {
			return nil, err
		}
		return Deleted{Token: id}, nil
	})
	return cli.Leaf(cmd, `  coffer cli quorum token-sign delete --token user-token.json
  coffer cli quorum token-sign delete --id 6f1c2a...`)
}
