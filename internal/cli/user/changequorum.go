package user

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func changeQuorum(env *cli.Env) *cobra.Command {
	return cli.Group("change-quorum", "Change a user's quorum strategy",
		cli.Group("token-sign", "The token-sign quorum strategy: approvals are signatures of quorum tokens",
			register(env)))
}

func register(env *cli.Env) *cobra.Command {
	var publicKey, signedToken string
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register the logged-in admin's quorum public key",
		Long: `Register the public key (PEM; RSA of 2048 bits or more, or ECDSA on P-256 or
P-384) with which the logged-in admin signs quorum tokens, so that it counts
as an approver. --signed-token is a registration token (from ` + "`quorum token-sign\ngenerate --service registration`" + `) signed with the private key, which shows
that you hold it; the CLI checks it before registering.`,
	}
	cmd.Flags().StringVar(&publicKey, "public-key", "", "the admin's quorum public key, PEM")
	cmd.Flags().StringVar(&signedToken, "signed-token", "", "a registration token signed with the private key")
	_ = cmd.MarkFlagRequired("public-key")
	_ = cmd.MarkFlagRequired("signed-token")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		k, err := cli.ReadPEMKey(publicKey)
		if err != nil {
			return nil, err
		}
		spki, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			return nil, cli.Usagef("--public-key: %v", err)
		}
		t, err := cli.ReadTokenFile(signedToken)
		if err != nil {
			return nil, err
		}
		if t.Service != cli.ServiceRegistration {
			return nil, cli.Usagef("--signed-token: a %s token; sign a registration token (`quorum token-sign generate --service registration`)", t.Service)
		}
		if time.Now().After(t.Expires) {
			return nil, cli.Usagef("--signed-token: the registration token expired at %s; generate another", t.Expires.Format(time.RFC3339))
		}
		proved := false
		for _, a := range t.Approvals {
			if cli.VerifyToken(k.Public(), t.Data, a.Signature) == nil {
				proved = true
			}
		}
		if !proved {
			return nil, cli.Usagef("--signed-token: no signature in it verifies with --public-key; sign it with the matching private key (`quorum token-sign approve`)")
		}
		if err := s.RegisterQuorumKey(ctx, spki); err != nil {
			return nil, err
		}
		u, role, _ := env.LoggedIn()
		return Result{Username: u, Role: role}, nil
	})
	return cli.Leaf(cmd, `  coffer cli quorum token-sign generate --service registration --token reg.json
  coffer cli quorum token-sign approve --token reg.json --username admin2 --private-key admin2.key
  coffer cli user change-quorum token-sign register --public-key admin2.pub --signed-token reg.json`)
}
