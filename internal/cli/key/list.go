package key

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// List is the result of `key list`.
type List struct {
	MatchedKeys      []cli.KeyRecord `json:"matched_keys"`
	TotalKeyCount    int             `json:"total_key_count"`
	ReturnedKeyCount int             `json:"returned_key_count"`
	NextToken        string          `json:"next_token,omitempty"`
}

// Table prints one key per row.
func (l List) Table() ([]string, [][]string) {
	rows := make([][]string, len(l.MatchedKeys))
	for i, k := range l.MatchedKeys {
		rows[i] = k.Row()
	}
	return cli.KeyHeader(), rows
}

func list(env *cli.Env) *cobra.Command {
	var filter []string
	var verbose bool
	var maxItems int
	var start string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the keys you can see, or those a filter selects",
		Long: `List keys: a crypto user sees the keys it owns and those shared with it; an
admin sees every token key (to manage, not to use). Each key is shown with its
key reference and label; --verbose adds its owner, the users it is shared
with, and every attribute.`,
	}
	cli.MultiFlag(cmd, &filter, "filter", "select keys: key-reference=0x... or attr.NAME=VALUE (all must match)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show every attribute, the owner and the shares")
	cmd.Flags().IntVar(&maxItems, "max-items", 0, "show at most this many keys (0: all); next_token continues")
	cmd.Flags().StringVar(&start, "starting-token", "", "continue a listing from its next_token")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		f, err := cli.ParseFilter("filter", filter)
		if err != nil {
			return nil, err
		}
		ids, err := cli.FindKeys(ctx, s, f)
		if err != nil {
			return nil, err
		}
		first := 0
		if start != "" {
			if first, err = strconv.Atoi(start); err != nil || first < 0 || first > len(ids) {
				return nil, cli.Usagef("--starting-token %q: use the next_token of the listing before", start)
			}
		}
		out := List{MatchedKeys: []cli.KeyRecord{}, TotalKeyCount: len(ids)}
		end := len(ids)
		if maxItems > 0 && first+maxItems < end {
			end = first + maxItems
			out.NextToken = strconv.Itoa(end)
		}
		for _, id := range ids[first:end] {
			r, err := cli.DescribeKey(ctx, s, id, verbose)
			if err != nil {
				return nil, err
			}
			out.MatchedKeys = append(out.MatchedKeys, r)
		}
		out.ReturnedKeyCount = len(out.MatchedKeys)
		return out, nil
	})
	return cli.Leaf(cmd, `  coffer cli key list
  coffer cli key list --filter attr.label=aes256 --verbose
  coffer cli key list --filter attr.class=private-key attr.key-type=ec`)
}
