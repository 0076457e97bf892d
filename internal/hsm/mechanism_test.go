package hsm

import "testing"

// TestMechanismKeys: every mechanism that operates with a key names the key
// it takes, and only those do; key generation names the type it makes.
func TestMechanismKeys(t *testing.T) {
	const withKey = encDec | sigVer | wrapUnw | FnDerive | FnEncapsulate | FnDecapsulate
	for m, info := range mechanisms {
		switch {
		case info.Functions&withKey != 0 && info.Key == NoKey:
			t.Errorf("%v operates with a key but names none", m)
		case info.Functions&withKey == 0 && info.Key != NoKey:
			t.Errorf("%v takes a key but operates with none", m)
		case info.Functions&(FnGenerate|FnGenerateKeyPair) != 0 && info.MaxKeySize == 0:
			t.Errorf("%v makes keys of no size", m)
		}
	}
}
