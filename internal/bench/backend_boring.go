//go:build boringcrypto

package bench

import "crypto/boring"

func cryptoBackend() string {
	if boring.Enabled() {
		return "boringcrypto"
	}
	return "go"
}
