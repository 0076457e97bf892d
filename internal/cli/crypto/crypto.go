// Package crypto holds the `coffer cli crypto` commands: sign and verify
// (rsa-pkcs, rsa-pkcs-pss, ecdsa, ed25519), mac generate and verify (hmac)
// and encrypt and decrypt (aes-gcm, under an IV the HSM chooses), with keys in the HSMs selected by --key-filter. Signatures and
// MACs are printed in base64; ECDSA signatures are r||s, as PKCS#11 makes
// them.
//
// It reaches the cluster only through internal/client, by way of package
// cli.
package crypto

import (
	"github.com/spf13/cobra"

	"github.com/coffer-hsm/coffer/internal/cli"
)

// New returns the crypto command group.
func New(env *cli.Env) *cobra.Command {
	sign := cli.Group("sign", "Sign data with a private key (crypto users)")
	verify := cli.Group("verify", "Verify a signature with a public key (crypto users)")
	for _, s := range schemes() {
		sign.AddCommand(signWith(env, s))
		verify.AddCommand(verifyWith(env, s))
	}
	mac := cli.Group("mac", "Message authentication codes with a secret key (crypto users)",
		cli.Group("generate", "Generate a MAC", macGenerate(env)),
		cli.Group("verify", "Verify a MAC", macVerify(env)))
	encrypt := cli.Group("encrypt", "Encrypt data with a key (crypto users)", encryptAESGCM(env))
	decrypt := cli.Group("decrypt", "Decrypt data with a key (crypto users)", decryptAESGCM(env))
	return cli.Group("crypto", "Sign, verify, MAC, encrypt and decrypt data with keys in the HSMs", sign, verify, mac, encrypt, decrypt)
}
