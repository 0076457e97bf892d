package crypto

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// gcmIVLen is the length of the IV the HSM chooses for `crypto encrypt
// aes-gcm`, which leads its output.
const gcmIVLen = 12

// Encrypted is the result of `crypto encrypt`.
type Encrypted struct {
	KeyReference string `json:"key-reference"`
	IV           string `json:"iv"`         // hex: the IV the HSM chose
	Ciphertext   string `json:"ciphertext"` // base64 of IV || ciphertext || tag
}

// Decrypted is the result of `crypto decrypt`.
type Decrypted struct {
	KeyReference string `json:"key-reference"`
	Plaintext    string `json:"plaintext"` // base64
}

// gcmFlags are the flags encrypt and decrypt aes-gcm share.
type gcmFlags struct {
	filter  []string
	tagBits int
	aad     string
	path    string
	b64     string
}

func (f *gcmFlags) register(cmd *cobra.Command, input string) {
	cli.MultiFlag(cmd, &f.filter, "key-filter", "the AES key: key-reference=0x... or attr.NAME=VALUE")
	_ = cmd.MarkFlagRequired("key-filter")
	cmd.Flags().IntVar(&f.tagBits, "tag-length-bits", 128, "the GCM tag length in bits: 96 to 128, a multiple of 8")
	cmd.Flags().StringVar(&f.aad, "aad", "", "additional authenticated data, hex")
	cmd.Flags().StringVar(&f.path, input+"-path", "", "file holding the "+input)
	cmd.Flags().StringVar(&f.b64, input, "", "the "+input+", base64")
}

// prepare reads the input and the mechanism's parameters and finds the key.
func (f *gcmFlags) prepare(ctx context.Context, s *client.Session, input string) (client.ObjectID, client.Mechanism, []byte, error) {
	m := client.Mechanism{Type: ck.CKM_CLOUDHSM_AES_GCM}
	if f.tagBits < 96 || f.tagBits > 128 || f.tagBits%8 != 0 {
		return 0, m, nil, cli.Usagef("--tag-length-bits %d: want 96 to 128, a multiple of 8", f.tagBits)
	}
	aad, err := hex.DecodeString(strings.TrimPrefix(f.aad, "0x"))
	if err != nil {
		return 0, m, nil, cli.Usagef("--aad: want hex")
	}
	m.AAD, m.TagBits = aad, uint(f.tagBits)
	data, err := cli.ReadData(f.path, f.b64, input)
	if err != nil {
		return 0, m, nil, err
	}
	fl, err := cli.ParseFilter("key-filter", f.filter)
	if err != nil {
		return 0, m, nil, err
	}
	key, err := cli.FindKey(ctx, s, fl)
	return key, m, data, err
}

func encryptAESGCM(env *cli.Env) *cobra.Command {
	var f gcmFlags
	var outPath string
	cmd := &cobra.Command{
		Use:   "aes-gcm",
		Short: "Encrypt with AES-GCM under an IV the HSM chooses",
		Long: `Encrypt data with AES-GCM and the AES key --key-filter selects (it must have
encrypt=true). The HSM chooses a fresh random 12-byte IV (CloudHSM's
CKM_CLOUDHSM_AES_GCM): it is printed as iv, and the ciphertext, printed in
base64 and with --ciphertext-path written raw to a file, is
IV || ciphertext || tag, which crypto decrypt aes-gcm takes as it is.`,
	}
	f.register(cmd, "data")
	cmd.Flags().StringVar(&outPath, "ciphertext-path", "", "also write IV || ciphertext || tag, raw, to this file")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		key, m, data, err := f.prepare(ctx, s, "data")
		if err != nil {
			return nil, err
		}
		out, err := s.Encrypt(ctx, key, m, data)
		if err != nil {
			return nil, err
		}
		if len(out) < gcmIVLen {
			return nil, cli.Failf("the HSM returned %d bytes, shorter than an IV", len(out))
		}
		if outPath != "" {
			if err := cli.WriteFile(outPath, out, 0o644, false); err != nil {
				return nil, err
			}
		}
		return Encrypted{KeyReference: cli.KeyRef(key), IV: hex.EncodeToString(out[:gcmIVLen]),
			Ciphertext: base64.StdEncoding.EncodeToString(out)}, nil
	})
	return cli.Leaf(cmd, `  coffer cli crypto encrypt aes-gcm --key-filter attr.label=data-key --data-path message.txt --ciphertext-path message.enc`)
}

func decryptAESGCM(env *cli.Env) *cobra.Command {
	var f gcmFlags
	var iv, outPath string
	cmd := &cobra.Command{
		Use:   "aes-gcm",
		Short: "Decrypt AES-GCM",
		Long: `Decrypt and authenticate AES-GCM ciphertext with the AES key --key-filter
selects (it must have decrypt=true). The ciphertext is IV || ciphertext || tag,
as crypto encrypt aes-gcm makes it, or ciphertext || tag with --iv. The
plaintext is printed in base64 and, with --plaintext-path, written raw to a
file (readable by its owner only). A wrong key, IV, AAD or tag fails
(CKR_ENCRYPTED_DATA_INVALID) and yields nothing.`,
	}
	f.register(cmd, "ciphertext")
	cmd.Flags().StringVar(&iv, "iv", "", "the IV, hex, if the ciphertext does not start with it")
	cmd.Flags().StringVar(&outPath, "plaintext-path", "", "also write the plaintext, raw, to this file")
	cmd.RunE = cli.Run(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		key, m, data, err := f.prepare(ctx, s, "ciphertext")
		if err != nil {
			return nil, err
		}
		if iv != "" {
			b, err := hex.DecodeString(strings.TrimPrefix(iv, "0x"))
			if err != nil || len(b) == 0 {
				return nil, cli.Usagef("--iv: want hex")
			}
			m.Type, m.IV = ck.CKM_AES_GCM, b
		}
		pt, err := s.Decrypt(ctx, key, m, data)
		if err != nil {
			return nil, err
		}
		if outPath != "" {
			if err := cli.WriteFile(outPath, pt, 0o600, false); err != nil {
				return nil, err
			}
		}
		return Decrypted{KeyReference: cli.KeyRef(key), Plaintext: base64.StdEncoding.EncodeToString(pt)}, nil
	})
	return cli.Leaf(cmd, `  coffer cli crypto decrypt aes-gcm --key-filter attr.label=data-key --ciphertext-path message.enc --plaintext-path message.txt`)
}
