//go:build boringcrypto

package cryptobackend

import (
	"crypto/boring"
	"testing"
)

func TestCurrentBoring(t *testing.T) {
	want := Go
	if boring.Enabled() {
		want = BoringCrypto
	}
	if got := Current(); got.Name != want || got.FIPS140 {
		t.Fatalf("backend %+v, want %q without fips140", got, want)
	}
}
