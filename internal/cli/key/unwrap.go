package key

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func unwrap(env *cli.Env) *cobra.Command {
	g := cli.Group("unwrap", "Unwrap (decrypt) a wrapped key into a new key in the HSMs (crypto users)")
	for _, m := range wrapMechs() {
		g.AddCommand(unwrapWith(env, m))
	}
	return g
}

func unwrapWith(env *cli.Env, m wrapMech) *cobra.Command {
	var n newKey
	var filter []string
	var dataPath, data, class string
	var f mechFlags
	classes := keyTypeClasses()
	names := make([]string, 0, len(classes))
	for c := range classes {
		names = append(names, c)
	}
	sort.Strings(names)
	cmd := &cobra.Command{
		Use:   m.name,
		Short: "Unwrap a key with " + m.name,
		Long: m.short + `.

The unwrapping key (--filter) must have unwrap=true. The new key is yours; it
is not local (attr.local=false), and takes the attributes given.`,
	}
	filterFlag(cmd, &filter, "filter", "the unwrapping key")
	cmd.Flags().StringVar(&dataPath, "data-path", "", "file holding the wrapped key, raw (as key wrap --path writes it)")
	cmd.Flags().StringVar(&data, "data", "", "the wrapped key, base64")
	cmd.Flags().StringVar(&class, "key-type-class", "", "what the wrapped key is: "+strings.Join(names, ", "))
	_ = cmd.MarkFlagRequired("key-type-class")
	cli.Enum(cmd, "key-type-class", names...)
	n.flags(cmd, "the new key's label")
	m.flags(cmd, &f, true)
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		ct, ok := classes[class]
		if !ok {
			return nil, cli.Usagef("--key-type-class %q: want one of %s", class, strings.Join(names, ", "))
		}
		wrapped, err := cli.ReadData(dataPath, data, "data")
		if err != nil {
			return nil, err
		}
		var iv []byte
		if m.typ == ck.CKM_AES_GCM {
			if f.iv != "" {
				if iv, err = hex.DecodeString(strings.TrimPrefix(f.iv, "0x")); err != nil {
					return nil, cli.Usagef("--iv: want hex")
				}
			} else if len(wrapped) > gcmIVLen {
				iv, wrapped = wrapped[:gcmIVLen], wrapped[gcmIVLen:]
			} else {
				return nil, cli.Usagef("the wrapped data is too short to hold the IV")
			}
		}
		mech, err := m.mechanism(&f, iv)
		if err != nil {
			return nil, err
		}
		uk, err := findKey(ctx, s, "filter", filter)
		if err != nil {
			return nil, err
		}
		tmpl, err := template(n.session, n.label, n.attrs,
			client.Attribute{Type: ck.CKA_CLASS, Value: binary.LittleEndian.AppendUint64(nil, ct[0])},
			client.Attribute{Type: ck.CKA_KEY_TYPE, Value: binary.LittleEndian.AppendUint64(nil, ct[1])})
		if err != nil {
			return nil, err
		}
		id, err := s.UnwrapKey(ctx, uk, mech, wrapped, tmpl)
		if err != nil {
			return nil, err
		}
		if err := shareAll(ctx, s, n.share, id); err != nil {
			return nil, err
		}
		return created(ctx, s, id)
	})
	return cli.Leaf(cmd, "  coffer cli key unwrap "+m.name+" --filter attr.label=wrapping-key --key-type-class aes --label payload-copy --data-path payload.wrapped")
}
