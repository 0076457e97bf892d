package hsm

import (
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// TestCreationObjectIDsStay: the ids a creation's objects get are part of
// the cluster's state (every HSM, of every version, computes the same ones
// for a resent call), so they never change.
func TestCreationObjectIDsStay(t *testing.T) {
	for _, c := range []struct {
		owner   string
		token   []byte
		attempt uint32
		class   ck.ObjectClass
		want    ObjectID
	}{
		{"app_user", []byte("0123456789abcdef"), 3, ck.CKO_SECRET_KEY, 993251072186533759},
		{"", nil, 1, ck.CKO_DATA, 18228079828073102459},
	} {
		if got := creationObjectID(c.owner, c.token, c.attempt, c.class); got != c.want {
			t.Errorf("creationObjectID(%q, %q, %d, %v) = %d, want %d", c.owner, c.token, c.attempt, c.class, got, c.want)
		}
	}
}
