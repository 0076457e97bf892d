package quorum

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Generated is the result of `quorum token-sign generate`.
type Generated struct {
	Filepath          string    `json:"filepath"`
	Token             string    `json:"token"`
	Service           string    `json:"service"`
	Expires           time.Time `json:"expires"`
	ApprovalsRequired int       `json:"approvals-required,omitempty"`
}

func generate(env *cli.Env) *cobra.Command {
	var service, tokenPath, dataPath string
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate a quorum token for approvers to sign (admins)",
		Long: `Get a quorum token from an HSM and write it to --token. Approvers sign its data
(` + "`quorum token-sign approve`" + `, or openssl on the bytes --data-path writes) and the
file is then passed to the guarded operation with --approval, before it
expires. --service registration makes a local token instead, to sign when
registering a quorum key (no login needed).`,
	}
	serviceFlag(cmd, &service, cli.ServiceUser, cli.ServiceQuorum, cli.ServiceRegistration)
	cmd.Flags().StringVar(&tokenPath, "token", "", "file to write the token to")
	cmd.Flags().StringVar(&dataPath, "data-path", "", "also write the bytes approvers sign to this file (for openssl dgst -sha256 -sign)")
	_ = cmd.MarkFlagRequired("token")
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(ctx context.Context, _ *client.Session) (any, error) {
		var t *cli.TokenFile
		m := 0
		if service == cli.ServiceRegistration {
			var err error
			if t, err = cli.NewRegistrationToken(time.Now()); err != nil {
				return nil, err
			}
		} else {
			hsmService, err := cli.HSMService(service)
			if err != nil {
				return nil, err
			}
			s, err := env.Session(ctx)
			if err != nil {
				return nil, err
			}
			q, err := s.QuorumToken(ctx, hsmService)
			if err != nil {
				return nil, err
			}
			if values, err := s.QuorumValues(ctx); err == nil {
				m = values[hsmService]
			}
			t = &cli.TokenFile{Version: cli.TokenVersion, Service: service, Token: q.ID, Issuer: s.Username(),
				Expires: q.Expires.UTC(), Data: q.Data, Approvals: []cli.Approval{}}
		}
		if err := t.Write(tokenPath); err != nil {
			return nil, err
		}
		if dataPath != "" {
			if err := cli.WriteFile(dataPath, t.Data, 0o644, false); err != nil {
				return nil, err
			}
		}
		return Generated{Filepath: tokenPath, Token: t.Token, Service: service, Expires: t.Expires, ApprovalsRequired: m}, nil
	})
	return cli.Leaf(cmd, `  coffer cli quorum token-sign generate --service user --token user-token.json
  coffer cli quorum token-sign generate --service registration --token reg.json`)
}
