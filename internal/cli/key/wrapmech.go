package key

import (
	"encoding/hex"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

// gcmIVLen is the IV `key wrap aes-gcm` draws from the HSM and puts before
// the wrapped key.
const gcmIVLen = 12

// wrapMech is a wrapping mechanism as `key wrap` and `key unwrap` name it,
// as CloudHSM CLI names them. The CLI does no key wrapping of its own: each
// is a mechanism of the HSMs.
type wrapMech struct {
	name  string
	short string
	typ   ck.MechanismType
}

func wrapMechs() []wrapMech {
	return []wrapMech{
		{"aes-gcm", "AES-GCM with an AES key; the 12-byte IV, drawn from the HSM, comes first in the wrapped data", ck.CKM_AES_GCM},
		{"aes-no-pad", "AES key wrap without padding (RFC 3394, CloudHSM's CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD) with an AES key: for keys whose length is a multiple of 8 bytes", ck.CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD},
		{"aes-pkcs5-pad", "AES key wrap (RFC 3394) of the key padded as PKCS #5 pads (CloudHSM's CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD) with an AES key: for keys of 8 bytes or more", ck.CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD},
		{"aes-zero-pad", "AES key wrap with zero padding (RFC 5649, CloudHSM's CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD) with an AES key: for keys of any length", ck.CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD},
		{"aes-kwp", "AES key wrap with padding (RFC 5649, NIST KWP, CKM_AES_KEY_WRAP_PAD) with an AES key: for keys of any length", ck.CKM_AES_KEY_WRAP_PAD},
		{"rsa-aes", "RSA-AES (CKM_RSA_AES_KEY_WRAP): a temporary AES key wraps the key (RFC 5649) and is itself wrapped with RSA-OAEP; wrap with an RSA public key, unwrap with its private key (keys of any size, private keys too)", ck.CKM_RSA_AES_KEY_WRAP},
		{"rsa-oaep", "RSA-OAEP: wrap with an RSA public key, unwrap with its private key (short keys such as AES keys)", ck.CKM_RSA_PKCS_OAEP},
		{"rsa-pkcs", "RSA PKCS #1 v1.5: wrap with an RSA public key, unwrap with its private key (keys of up to the modulus size less 11 bytes, such as AES keys; not FIPS-approved)", ck.CKM_RSA_PKCS},
	}
}

// mechFlags are the mechanism's parameters.
type mechFlags struct {
	tagBits int
	aad     string
	iv      string
	hash    string
	mgf     string
	aesBits int
}

func (m wrapMech) flags(cmd *cobra.Command, f *mechFlags, unwrap bool) {
	switch m.typ {
	case ck.CKM_AES_GCM:
		cmd.Flags().IntVar(&f.tagBits, "tag-length-bits", 128, "the GCM tag length in bits: 96 to 128, a multiple of 8")
		cmd.Flags().StringVar(&f.aad, "aad", "", "additional authenticated data, hex")
		if unwrap {
			cmd.Flags().StringVar(&f.iv, "iv", "", "the IV, hex, if the wrapped data does not start with it")
		}
	case ck.CKM_RSA_PKCS_OAEP, ck.CKM_RSA_AES_KEY_WRAP:
		if m.typ == ck.CKM_RSA_AES_KEY_WRAP {
			cmd.Flags().IntVar(&f.aesBits, "aes-key-bits", 256, "the temporary AES key's size: 128, 192 or 256")
		}
		cmd.Flags().StringVar(&f.hash, "hash-function", "sha256", "the OAEP hash: "+strings.Join(cli.HashNames(), ", "))
		cmd.Flags().StringVar(&f.mgf, "mgf", "", "the mask generation function: "+strings.Join(cli.MGFNames(), ", ")+" (default: MGF1 with the OAEP hash)")
		cli.Enum(cmd, "hash-function", cli.HashNames()...)
		cli.Enum(cmd, "mgf", cli.MGFNames()...)
	}
}

// mechanism builds the mechanism; iv is AES-GCM's.
func (m wrapMech) mechanism(f *mechFlags, iv []byte) (client.Mechanism, error) {
	mech := client.Mechanism{Type: m.typ}
	switch m.typ {
	case ck.CKM_AES_GCM:
		if f.tagBits < 96 || f.tagBits > 128 || f.tagBits%8 != 0 {
			return mech, cli.Usagef("--tag-length-bits %d: want 96 to 128, a multiple of 8", f.tagBits)
		}
		aad, err := hex.DecodeString(strings.TrimPrefix(f.aad, "0x"))
		if err != nil {
			return mech, cli.Usagef("--aad: want hex")
		}
		mech.IV, mech.AAD, mech.TagBits = iv, aad, uint(f.tagBits)
	case ck.CKM_RSA_PKCS_OAEP, ck.CKM_RSA_AES_KEY_WRAP:
		if m.typ == ck.CKM_RSA_AES_KEY_WRAP {
			if f.aesBits != 128 && f.aesBits != 192 && f.aesBits != 256 {
				return mech, cli.Usagef("--aes-key-bits %d: want 128, 192 or 256", f.aesBits)
			}
			mech.AESKeyBits = uint(f.aesBits)
		}
		h, err := cli.LookupHash(f.hash)
		if err != nil {
			return mech, err
		}
		if mech.MGF, err = cli.LookupMGF(f.mgf, h); err != nil {
			return mech, err
		}
		mech.Hash = h.Digest
	}
	return mech, nil
}

// keyTypeClasses are the values of unwrap's --key-type-class.
func keyTypeClasses() map[string][2]uint64 {
	return map[string][2]uint64{
		"aes":             {uint64(ck.CKO_SECRET_KEY), uint64(ck.CKK_AES)},
		"generic-secret":  {uint64(ck.CKO_SECRET_KEY), uint64(ck.CKK_GENERIC_SECRET)},
		"rsa-private":     {uint64(ck.CKO_PRIVATE_KEY), uint64(ck.CKK_RSA)},
		"ec-private":      {uint64(ck.CKO_PRIVATE_KEY), uint64(ck.CKK_EC)},
		"ed25519-private": {uint64(ck.CKO_PRIVATE_KEY), uint64(ck.CKK_EC_EDWARDS)},
	}
}
