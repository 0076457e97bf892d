package cryptoki

import "testing"

// The token serial shows the distinctive end of the cluster id, never a
// cut-off "cluster-" prefix, and fits CK_TOKEN_INFO's 16 characters.
func TestTokenSerial(t *testing.T) {
	for id, want := range map[string]string{
		"cluster-dj74kvwmbs3":           "dj74kvwmbs3",
		"cluster-local":                 "local",
		"cluster-abcdefghijklmnopqrstu": "fghijklmnopqrstu",
		"my-own-cluster":                "my-own-cluster",
		"cluster-":                      "cluster-",
		"a-very-long-cluster-name-x":    "g-cluster-name-x",
	} {
		if got := tokenSerial(id); got != want || len(got) > 16 {
			t.Errorf("tokenSerial(%q) = %q, want %q", id, got, want)
		}
	}
}
