package key

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Deleted is the result of `key delete`.
type Deleted struct {
	KeyReference string `json:"key-reference"`
	Deleted      bool   `json:"deleted"`
}

func remove(env *cli.Env) *cobra.Command {
	var filter []string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a key (its owner only)",
		Long:  `Delete the one key --filter selects, on every HSM. Only the key's owner may; a user it is shared with may not.`,
	}
	filterFlag(cmd, &filter, "filter", "the key to delete")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		id, err := findKey(ctx, s, "filter", filter)
		if err != nil {
			return nil, err
		}
		if err := s.DestroyObject(ctx, id); err != nil {
			return nil, err
		}
		return Deleted{KeyReference: cli.KeyRef(id), Deleted: true}, nil
	})
	return cli.Leaf(cmd, `  coffer cli key delete --filter attr.label=aes256
  coffer cli key delete --filter key-reference=0x0000000000000012`)
}
