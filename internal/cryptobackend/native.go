//go:build !boringcrypto

package cryptobackend

func boringEnabled() bool { return false }
