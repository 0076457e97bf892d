package key

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// AttributeSet is the result of `key set-attribute`.
type AttributeSet struct {
	KeyReference string `json:"key-reference"`
	Name         string `json:"name"`
	Value        any    `json:"value"`
}

func setAttribute(env *cli.Env) *cobra.Command {
	var filter []string
	var name, value string
	cmd := &cobra.Command{
		Use:   "set-attribute",
		Short: "Change an attribute of a key (its owner only)",
		Long: `Set one attribute of the one key --filter selects. Only the owner may. Some
attributes are fixed at creation (class, key-type, token...) and some change
one way only (extractable true to false, sensitive false to true).`,
	}
	filterFlag(cmd, &filter, "filter", "the key")
	cmd.Flags().StringVar(&name, "name", "", "the attribute, e.g. label, sign, decrypt, extractable")
	cmd.Flags().StringVar(&value, "value", "", "its new value")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("value")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		a, err := cli.ParseAttribute(name + "=" + value)
		if err != nil {
			return nil, err
		}
		id, err := findKey(ctx, s, "filter", filter)
		if err != nil {
			return nil, err
		}
		if err := s.SetAttributes(ctx, id, []client.Attribute{a}); err != nil {
			return nil, err
		}
		d, _ := cli.LookupAttribute(name)
		return AttributeSet{KeyReference: cli.KeyRef(id), Name: d.Name, Value: d.Decode(a.Value)}, nil
	})
	return cli.Leaf(cmd, `  coffer cli key set-attribute --filter attr.label=aes256 --name decrypt --value false
  coffer cli key set-attribute --filter key-reference=0x0000000000000012 --name label --value retired`)
}
