//go:build !boringcrypto

package cryptobackend

import "testing"

func TestCurrentNative(t *testing.T) {
	if got := Current().Name; got != Go {
		t.Fatalf("backend %q in a build without boringcrypto", got)
	}
}
