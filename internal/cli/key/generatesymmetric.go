package key

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func generateSymmetric(env *cli.Env) *cobra.Command {
	return cli.Group("generate-symmetric", "Generate a secret key in the HSMs (crypto users)",
		symmetric(env, "aes", "Generate an AES key", ck.CKM_AES_KEY_GEN, "16, 24 or 32",
			`  coffer cli key generate-symmetric aes --label aes256 --key-length-bytes 32
  coffer cli key generate-symmetric aes --label wrapping-key --key-length-bytes 32 --attributes extractable=false`),
		symmetric(env, "generic-secret", "Generate a generic secret key (for HMAC)", ck.CKM_GENERIC_SECRET_KEY_GEN, "1 to 800",
			`  coffer cli key generate-symmetric generic-secret --label hmac-key --key-length-bytes 32`))
}

func symmetric(env *cli.Env, use, short string, mech ck.MechanismType, lengths, example string) *cobra.Command {
	var n newKey
	var length uint64
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `. The key is made inside the HSM and, as a token key, stored on
every HSM of the cluster. By default it may encrypt, decrypt, sign, verify,
wrap and unwrap as its type allows, and is extractable: pass
--attributes extractable=false for a key that can never leave the HSMs.`,
	}
	n.flags(cmd, "the key's label")
	cmd.Flags().Uint64Var(&length, "key-length-bytes", 0, "key length in bytes: "+lengths)
	_ = cmd.MarkFlagRequired("key-length-bytes")
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		tmpl, err := template(n.session, n.label, n.attrs, cli.Ulong(ck.CKA_VALUE_LEN, length))
		if err != nil {
			return nil, err
		}
		id, err := s.GenerateKey(ctx, client.Mechanism{Type: mech}, tmpl)
		if err != nil {
			return nil, err
		}
		if err := shareAll(ctx, s, n.share, id); err != nil {
			return nil, err
		}
		return created(ctx, s, id)
	})
	return cli.Leaf(cmd, example)
}
