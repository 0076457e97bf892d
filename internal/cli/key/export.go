package key

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Exported is the result of `key export`.
type Exported struct {
	KeyReference string `json:"key-reference"`
	Path         string `json:"path"`
	Format       string `json:"format"`
}

// Export formats.
const (
	FormatPKCS8PEM = "pkcs8-pem" // private keys: PEM "PRIVATE KEY"
	FormatSPKIPEM  = "spki-pem"  // public keys: PEM "PUBLIC KEY"
	FormatRaw      = "raw"       // secret keys: the key's bytes
)

func export(env *cli.Env) *cobra.Command {
	var filter []string
	var path string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export an extractable key in the clear (its owner only)",
		Long: `Write the one key --filter selects to --path, in the clear: a private key as
PKCS #8 PEM ("PRIVATE KEY"), a public key as PEM ("PUBLIC KEY"), a secret key
(AES, generic secret) as its raw bytes, since PEM has no type for those. Only
the owner may export, only a key with attr.extractable=true, and the file must
not exist (it is created readable by you only). To move a key between HSMs
without it ever being in the clear, use key wrap and key unwrap instead.`,
	}
	filterFlag(cmd, &filter, "filter", "the key to export")
	cmd.Flags().StringVar(&path, "path", "", "the file to create")
	_ = cmd.MarkFlagRequired("path")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		id, err := findKey(ctx, s, "filter", filter)
		if err != nil {
			return nil, err
		}
		info, err := s.ObjectInfo(ctx, id)
		if err != nil {
			return nil, err
		}
		var data []byte
		var format string
		switch info.Class {
		case ck.CKO_PUBLIC_KEY:
			der, err := s.ExportPublicKey(ctx, id)
			if err != nil {
				return nil, err
			}
			data, format = cli.PublicKeyPEM(der), FormatSPKIPEM
		case ck.CKO_PRIVATE_KEY:
			der, err := s.ExportKey(ctx, id)
			if err != nil {
				return nil, err
			}
			data, format = cli.PrivateKeyPEM(der), FormatPKCS8PEM
			clear(der)
		default:
			if data, err = s.ExportKey(ctx, id); err != nil {
				return nil, err
			}
			format = FormatRaw
		}
		err = cli.WriteFile(path, data, 0o600, true)
		clear(data)
		if err != nil {
			return nil, err
		}
		return Exported{KeyReference: cli.KeyRef(id), Path: path, Format: format}, nil
	})
	return cli.Leaf(cmd, `  coffer cli key export --filter attr.label=signing-key --path signing.pem
  coffer cli key export --filter attr.label=aes-transfer --path aes.bin`)
}
