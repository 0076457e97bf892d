package key

import (
	"context"
	"math/big"

	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/cli"
	"github.com/coffer-hsm/coffer/internal/client"
)

func generateAsymmetricPair(env *cli.Env) *cobra.Command {
	return cli.Group("generate-asymmetric-pair", "Generate a key pair in the HSMs (crypto users)",
		pair(env, "rsa"), pair(env, "ec"), pair(env, "ed25519"), pair(env, "ml-dsa"), pair(env, "ml-kem"))
}

// pairFlags are the flags of every key pair command.
type pairFlags struct {
	publicLabel, privateLabel string
	publicAttrs, privateAttrs []string
	newKey
}

func pair(env *cli.Env, kind string) *cobra.Command {
	var p pairFlags
	var bits uint64
	var exponent uint64
	var curve string
	var paramSet uint64
	cmd := &cobra.Command{Use: kind}
	cmd.Flags().StringVar(&p.publicLabel, "public-label", "", "the public key's label")
	cmd.Flags().StringVar(&p.privateLabel, "private-label", "", "the private key's label")
	_ = cmd.MarkFlagRequired("public-label")
	_ = cmd.MarkFlagRequired("private-label")
	cli.MultiFlag(cmd, &p.publicAttrs, "public-attributes", "public key attributes, NAME=VALUE")
	cli.MultiFlag(cmd, &p.privateAttrs, "private-attributes", "private key attributes, NAME=VALUE (e.g. extractable=false)")
	p.common(cmd)
	var example string
	switch kind {
	case "rsa":
		cmd.Short = "Generate an RSA key pair"
		cmd.Flags().Uint64Var(&bits, "modulus-size-bits", 0, "the modulus size: 2048 to 4096")
		cmd.Flags().Uint64Var(&exponent, "public-exponent", 65537, "the public exponent, odd")
		_ = cmd.MarkFlagRequired("modulus-size-bits")
		example = `  coffer cli key generate-asymmetric-pair rsa --public-label rsa-pub --private-label rsa-priv --modulus-size-bits 2048`
	case "ec":
		cmd.Short = "Generate an elliptic-curve key pair (ECDSA, ECDH)"
		cmd.Flags().StringVar(&curve, "curve", "", "secp256r1 (prime256v1), secp384r1, secp521r1, or ed25519")
		_ = cmd.MarkFlagRequired("curve")
		cli.Enum(cmd, "curve", "secp256r1", "prime256v1", "secp384r1", "secp521r1", "ed25519")
		example = `  coffer cli key generate-asymmetric-pair ec --curve secp256r1 --public-label ec-pub --private-label ec-priv`
	case "ed25519":
		cmd.Short = "Generate an Ed25519 key pair"
		curve = "ed25519"
		example = `  coffer cli key generate-asymmetric-pair ed25519 --public-label ed-pub --private-label ed-priv`
	case "ml-dsa":
		cmd.Short = "Generate an ML-DSA (FIPS 204) key pair"
		cmd.Flags().Uint64Var(&paramSet, "parameter-set", 0, "44, 65 or 87 (ML-DSA-44, -65, -87)")
		_ = cmd.MarkFlagRequired("parameter-set")
		example = `  coffer cli key generate-asymmetric-pair ml-dsa --parameter-set 65 --public-label mldsa-pub --private-label mldsa-priv`
	case "ml-kem":
		cmd.Short = "Generate an ML-KEM (FIPS 203) key pair"
		cmd.Flags().Uint64Var(&paramSet, "parameter-set", 0, "768 or 1024 (ML-KEM-768, -1024)")
		_ = cmd.MarkFlagRequired("parameter-set")
		example = `  coffer cli key generate-asymmetric-pair ml-kem --parameter-set 768 --public-label mlkem-pub --private-label mlkem-priv`
	}
	cmd.Long = cmd.Short + `. The private key is made inside the HSM; as token keys both are
stored on every HSM. The private key signs (RSA also decrypts and unwraps; an
ML-KEM key decapsulates instead) and is extractable unless --private-attributes
extractable=false.`
	cmd.RunE = cli.Change(env, cli.NeedSession, func(ctx context.Context, s *client.Session) (any, error) {
		var mech ck.MechanismType
		var fixed []client.Attribute
		switch {
		case kind == "ml-dsa" || kind == "ml-kem":
			ps, err := parameterSet(kind, paramSet)
			if err != nil {
				return nil, err
			}
			mech = ck.CKM_ML_DSA_KEY_PAIR_GEN
			if kind == "ml-kem" {
				mech = ck.CKM_ML_KEM_KEY_PAIR_GEN
			}
			fixed = append(fixed, cli.Ulong(ck.CKA_PARAMETER_SET, uint64(ps)))
		case kind == "rsa":
			mech = ck.CKM_RSA_PKCS_KEY_PAIR_GEN
			fixed = append(fixed, cli.Ulong(ck.CKA_MODULUS_BITS, bits),
				client.Attribute{Type: ck.CKA_PUBLIC_EXPONENT, Value: new(big.Int).SetUint64(exponent).Bytes()})
		case curve == "ed25519":
			mech = ck.CKM_EC_EDWARDS_KEY_PAIR_GEN
		default:
			mech = ck.CKM_EC_KEY_PAIR_GEN
			params, err := cli.CurveParams(curve)
			if err != nil {
				return nil, cli.Usagef("--curve: %v", err)
			}
			fixed = append(fixed, client.Attribute{Type: ck.CKA_EC_PARAMS, Value: params})
		}
		pub, err := template(p.session, p.publicLabel, p.publicAttrs, fixed...)
		if err != nil {
			return nil, err
		}
		priv, err := template(p.session, p.privateLabel, p.privateAttrs)
		if err != nil {
			return nil, err
		}
		pubID, privID, err := s.GenerateKeyPair(ctx, client.Mechanism{Type: mech}, pub, priv)
		if err != nil {
			return nil, err
		}
		if err := shareAll(ctx, s, p.share, pubID, privID); err != nil {
			return nil, err
		}
		pr, err := cli.DescribeKey(ctx, s, pubID, true)
		if err != nil {
			return nil, err
		}
		qr, err := cli.DescribeKey(ctx, s, privID, true)
		if err != nil {
			return nil, err
		}
		return CreatedPair{PublicKey: pr, PrivateKey: qr}, nil
	})
	return cli.Leaf(cmd, example)
}

// parameterSet maps --parameter-set to CKA_PARAMETER_SET.
func parameterSet(kind string, n uint64) (ck.ParameterSet, error) {
	sets := map[string]map[uint64]ck.ParameterSet{
		"ml-dsa": {44: ck.CKP_ML_DSA_44, 65: ck.CKP_ML_DSA_65, 87: ck.CKP_ML_DSA_87},
		"ml-kem": {768: ck.CKP_ML_KEM_768, 1024: ck.CKP_ML_KEM_1024},
	}
	ps, ok := sets[kind][n]
	if !ok {
		if kind == "ml-dsa" {
			return 0, cli.Usagef("--parameter-set %d: want 44, 65 or 87", n)
		}
		return 0, cli.Usagef("--parameter-set %d: want 768 or 1024", n)
	}
	return ps, nil
}
