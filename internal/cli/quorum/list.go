package quorum

import (
	"context"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// TokenEntry is one outstanding quorum token.
type TokenEntry struct {
	Token             string    `json:"token"`
	Service           string    `json:"service"`
	Expires           time.Time `json:"expires"`
	TimeoutSeconds    int       `json:"token-timeout-seconds"`
	ApprovalsRequired int       `json:"approvals-required"`
}

// Tokens is the result of `quorum token-sign list`.
type Tokens struct {
	Tokens []TokenEntry `json:"tokens"`
}

// Table prints one token per row.
func (t Tokens) Table() ([]string, [][]string) {
	rows := make([][]string, len(t.Tokens))
	for i, e := range t.Tokens {
		rows[i] = []string{e.Token, e.Service, e.Expires.Format(time.RFC3339), strconv.Itoa(e.ApprovalsRequired)}
	}
	return []string{"TOKEN", "SERVICE", "EXPIRES", "APPROVALS-REQUIRED"}, rows
}

func list(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"list-tokens"},
		Short:   "List the outstanding quorum tokens (admins)",
		Long:    `List the quorum tokens that have not expired, on every HSM that answers.`,
	}
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		tokens, err := s.ListQuorumTokens(ctx)
		if err != nil {
			return nil, err
		}
		values, err := s.QuorumValues(ctx)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		out := Tokens{Tokens: make([]TokenEntry, len(tokens))}
		for i, t := range tokens {
			out.Tokens[i] = TokenEntry{Token: t.ID, Service: cli.CLIService(t.Service), Expires: t.Expires.UTC(),
				TimeoutSeconds: max(0, int(t.Expires.Sub(now).Seconds())), ApprovalsRequired: values[t.Service]}
		}
		return out, nil
	})
	return cli.Leaf(cmd, `  coffer cli quorum token-sign list`)
}
