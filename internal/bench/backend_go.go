//go:build !boringcrypto

package bench

func cryptoBackend() string { return "go" }
