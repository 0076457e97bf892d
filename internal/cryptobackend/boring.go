//go:build boringcrypto

package cryptobackend

import "crypto/boring"

func boringEnabled() bool { return boring.Enabled() }
