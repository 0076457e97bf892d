package quorum

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Approved is the result of `quorum token-sign approve`.
type Approved struct {
	Filepath  string `json:"filepath"`
	Token     string `json:"token"`
	Username  string `json:"username"`
	Approvals int    `json:"approvals"`
}

func approve(env *cli.Env) *cobra.Command {
	var tokenPath, username, keyPath, sigPath string
	cmd := &cobra.Command{
		Use:   "approve",
		Short: "Add an approver's signature to a quorum token file (offline)",
		Long: `Sign a quorum token file's data as an approver and add the signature to the
file. Sign with --private-key (PEM; the key whose public half the approver
registered), or add a signature made elsewhere with --signature: SHA-256 with
RSA PKCS #1 v1.5 or ECDSA (DER), e.g.
  openssl dgst -sha256 -sign admin2.key -out sig.bin token-data.bin
This runs on the approver's machine and needs no login.`,
	}
	cmd.Flags().StringVar(&tokenPath, "token", "", "the quorum token file, changed in place")
	cmd.Flags().StringVar(&username, "username", "", "the approving admin")
	cmd.Flags().StringVar(&keyPath, "private-key", "", "the approver's quorum private key, PEM")
	cmd.Flags().StringVar(&sigPath, "signature", "", "a signature of the token's data made elsewhere, raw or base64")
	_ = cmd.MarkFlagRequired("token")
	_ = cmd.MarkFlagRequired("username")
	cmd.MarkFlagsOneRequired("private-key", "signature")
	cmd.MarkFlagsMutuallyExclusive("private-key", "signature")
	cmd.RunE = cli.Run(env, cli.NeedNothing, func(context.Context, *client.Session) (any, error) {
		t, err := cli.ReadTokenFile(tokenPath)
		if err != nil {
			return nil, err
		}
		var sig []byte
		if keyPath != "" {
			k, err := cli.ReadPEMKey(keyPath)
			if err != nil {
				return nil, err
			}
			signer, err := k.Signer()
			if err != nil {
				return nil, cli.Usagef("--private-key %s: %v", keyPath, err)
			}
			if sig, err = cli.SignToken(signer, t.Data); err != nil {
				return nil, cli.Usagef("--private-key %s: %v", keyPath, err)
			}
		} else if sig, err = cli.ReadEncoded(sigPath, "", "signature"); err != nil {
			return nil, err
		}
		t.Approve(username, sig)
		if err := t.Write(tokenPath); err != nil {
			return nil, err
		}
		return Approved{Filepath: tokenPath, Token: t.Token, Username: username, Approvals: len(t.Approvals)}, nil
	})
	return cli.Leaf(cmd, `  coffer cli quorum token-sign approve --token user-token.json --username admin2 --private-key admin2.key
  coffer cli quorum token-sign approve --token user-token.json --username admin3 --signature admin3.sig`)
}
