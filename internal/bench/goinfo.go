package bench

import (
	"crypto/fips140"
	"runtime"
)

func goInfo() GoInfo {
	return GoInfo{Version: runtime.Version(), Crypto: cryptoBackend(), FIPS140: fips140.Enabled()}
}
