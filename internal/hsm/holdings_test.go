package hsm

import (
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// TestHoldingsFollowChanges: the counts NodeInfo and the metrics report are
// kept as objects and users come and go, and agree with what the store
// holds, across creation, session objects, destruction, a peer's deletion
// and a restart.
func TestHoldingsFollowChanges(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	bob := withCU(t, td, admin, "bob")
	stored := func() (objects, users int) {
		td.store.mu.Lock()
		defer td.store.mu.Unlock()
		return len(td.store.recs[RecordObject]), len(td.store.recs[RecordUser])
	}
	check := func(td *testDevice, when string) {
		t.Helper()
		gotObjects, gotUsers := td.Holdings()
		wantObjects, wantUsers := stored()
		if gotObjects != wantObjects || gotUsers != wantUsers {
			t.Errorf("%s: holdings %d token objects, %d users; the store has %d and %d", when, gotObjects, gotUsers, wantObjects, wantUsers)
		}
	}
	check(td, "activated")
	a := genAES(t, td, bob, "a")
	genAES(t, td, bob, "b")
	if _, err := td.GenerateKey(ctx, bob, Mechanism{Type: ck.CKM_AES_KEY_GEN}, Template{Bool(ck.CKA_TOKEN, false), Ulong(ck.CKA_VALUE_LEN, 32)}); err != nil {
		t.Fatal(err)
	}
	check(td, "two token keys and a session key")
	if n, _ := td.Holdings(); n != 2 {
		t.Errorf("%d token objects, want 2", n)
	}
	noErr(t, td.DestroyObject(ctx, bob, a))
	check(td, "one destroyed")
	withCU(t, td, admin, "carol")
	check(td, "a user added")
	b := genAES(t, td, bob, "c")
	td.store.mu.Lock()
	delete(td.store.recs[RecordObject], b.String()) // deleted by a peer
	td.store.mu.Unlock()
	noErr(t, td.Reload(RecordObject, b.String(), func() ([]byte, error) { return nil, nil }))
	check(td, "a peer's deletion")
	check(td.reopen(t), "restarted")
}
