package crypto

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// MAC is the result of `crypto mac generate`.
type MAC struct {
	KeyReference string `json:"key-reference"`
	MAC          string `json:"mac"`
}

// macFlags are the flags mac generate and verify share.
type macFlags struct {
	filter   []string
	hash     string
	dataPath string
	data     string
}

func (f *macFlags) register(cmd *cobra.Command) {
	cli.MultiFlag(cmd, &f.filter, "key-filter", "the generic secret key: key-reference=0x... or attr.NAME=VALUE")
	_ = cmd.MarkFlagRequired("key-filter")
	cmd.Flags().StringVar(&f.hash, "hash-function", "sha256", "the hash: "+strings.Join(cli.HashNames(), ", "))
	cli.Enum(cmd, "hash-function", cli.HashNames()...)
	cmd.Flags().StringVar(&f.dataPath, "data-path", "", "file holding the data")
	cmd.Flags().StringVar(&f.data, "data", "", "the data, base64")
}

// hmacMechanism is HMAC with the hash named.
func hmacMechanism(hash string) (client.Mechanism, error) {
	m := map[string]ck.MechanismType{
		"sha1": ck.CKM_SHA_1_HMAC, "sha224": ck.CKM_SHA224_HMAC, "sha256": ck.CKM_SHA256_HMAC,
		"sha384": ck.CKM_SHA384_HMAC, "sha512": ck.CKM_SHA512_HMAC,
	}
	h, err := cli.LookupHash(hash)
	if err != nil {
		return client.Mechanism{}, err
	}
	return client.Mechanism{Type: m[h.Name]}, nil
}

// prepare reads the data and finds the key.
func (f *macFlags) prepare(ctx context.Context, s *client.Session) (client.ObjectID, client.Mechanism, []byte, error) {
	data, err := cli.ReadData(f.dataPath, f.data, "data")
	if err != nil {
		return 0, client.Mechanism{}, nil, err
	}
	mech, err := hmacMechanism(f.hash)
	if err != nil {
		return 0, mech, nil, err
	}
	fl, err := cli.ParseFilter("key-filter", f.filter)
	if err != nil {
		return 0, mech, nil, err
	}
	key, err := cli.FindKey(ctx, s, fl)
	return key, mech, data, err
}

func macGenerate(env *cli.Env) *cobra.Command {
	var f macFlags
	var macPath string
	cmd := &cobra.Command{
		Use:   "hmac",
		Short: "Generate an HMAC",
		Long: `Compute the HMAC of data with the generic secret key --key-filter selects (it
must have sign=true). The MAC is printed in base64 and, with --mac-path,
written raw to a file.`,
	}
	f.register(cmd)
	cmd.Flags().StringVar(&macPath, "mac-path", "", "also write the MAC, raw, to this file")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		key, mech, data, err := f.prepare(ctx, s)
		if err != nil {
			return nil, err
		}
		mac, err := s.Sign(ctx, key, mech, data)
		if err != nil {
			return nil, err
		}
		if macPath != "" {
			if err := cli.WriteFile(macPath, mac, 0o644, false); err != nil {
				return nil, err
			}
		}
		return MAC{KeyReference: cli.KeyRef(key), MAC: base64.StdEncoding.EncodeToString(mac)}, nil
	})
	return cli.Leaf(cmd, `  coffer cli crypto mac generate hmac --key-filter attr.label=hmac-key --hash-function sha256 --data-path message.txt`)
}
