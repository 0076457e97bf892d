package key

import (
	"context"
	"encoding/base64"
	"encoding/hex"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// Wrapped is the result of `key wrap`.
type Wrapped struct {
	PayloadKeyReference  string `json:"payload-key-reference"`
	WrappingKeyReference string `json:"wrapping-key-reference"`
	WrappedKeyData       string `json:"wrapped-key-data"`
	IV                   string `json:"iv,omitempty"`
	Path                 string `json:"path,omitempty"`
}

func wrap(env *cli.Env) *cobra.Command {
	g := cli.Group("wrap", "Wrap (encrypt) a key under another key (the payload's owner only)")
	for _, m := range wrapMechs() {
		g.AddCommand(wrapWith(env, m))
	}
	return g
}

func wrapWith(env *cli.Env, m wrapMech) *cobra.Command {
	var payload, wrapping []string
	var path string
	var f mechFlags
	cmd := &cobra.Command{
		Use:   m.name,
		Short: "Wrap a key with " + m.name,
		Long: m.short + `.

The payload key (--payload-filter) must be yours and extractable; a key with
wrap-with-trusted=true needs a wrapping key with trusted=true. The wrapping
key (--wrapping-filter) must have wrap=true. The wrapped key is printed in
base64 and, with --path, written raw to a file for ` + "`key unwrap " + m.name + " --data-path`.",
	}
	filterFlag(cmd, &payload, "payload-filter", "the key to wrap")
	filterFlag(cmd, &wrapping, "wrapping-filter", "the wrapping key")
	cmd.Flags().StringVar(&path, "path", "", "also write the wrapped key, raw, to this file")
	m.flags(cmd, &f, false)
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		pk, err := findKey(ctx, s, "payload-filter", payload)
		if err != nil {
			return nil, err
		}
		wk, err := findKey(ctx, s, "wrapping-filter", wrapping)
		if err != nil {
			return nil, err
		}
		var iv []byte
		if m.typ == ck.CKM_AES_GCM {
			if iv, err = s.GenerateRandom(ctx, gcmIVLen); err != nil {
				return nil, err
			}
		}
		mech, err := m.mechanism(&f, iv)
		if err != nil {
			return nil, err
		}
		out, err := s.WrapKey(ctx, wk, mech, pk)
		if err != nil {
			return nil, err
		}
		data := append(iv, out...)
		if path != "" {
			if err := cli.WriteFile(path, data, 0o644, false); err != nil {
				return nil, err
			}
		}
		r := Wrapped{PayloadKeyReference: cli.KeyRef(pk), WrappingKeyReference: cli.KeyRef(wk),
			WrappedKeyData: base64.StdEncoding.EncodeToString(data), Path: path}
		if iv != nil {
			r.IV = hex.EncodeToString(iv)
		}
		return r, nil
	})
	return cli.Leaf(cmd, "  coffer cli key wrap "+m.name+" --payload-filter attr.label=payload --wrapping-filter attr.label=wrapping-key --path payload.wrapped")
}
