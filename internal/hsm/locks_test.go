package hsm

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// TestFailedLoginHoldsUpNoObjectChange: while a failed login's store write
// of its user's counters is held (a slow fsync), another user's attribute
// change and a peer's update of an object go through; a second failure of
// the same user waits for the first and both count.
func TestFailedLoginHoldsUpNoObjectChange(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	key := genAES(t, td, bob, "bob's")

	writing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	td.store.beforePut = func(k RecordKind, id string) {
		if k == RecordUser && id == "alice" {
			once.Do(func() { close(writing) })
			<-release
		}
	}
	failed := make(chan error, 2)
	go func() { failed <- td.Login(ctx, td.OpenSession(), RoleCryptoUser, "alice", "wrong-password-1") }()
	<-writing

	changed := make(chan error, 1)
	go func() {
		changed <- td.SetAttributes(ctx, bob, key, Template{String(ck.CKA_LABEL, "renamed")})
	}()
	reloaded := make(chan error, 1)
	go func() {
		reloaded <- td.Reload(RecordObject, key.String(), func() ([]byte, error) {
			td.store.mu.Lock()
			defer td.store.mu.Unlock()
			return slices.Clone(td.store.recs[RecordObject][key.String()]), nil
		})
	}()
	for name, c := range map[string]chan error{"an attribute change": changed, "a peer's update of an object": reloaded} {
		select {
		case err := <-c:
			noErr(t, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s waits for a failed login's store write of another user", name)
		}
	}
	go func() { failed <- td.Login(ctx, td.OpenSession(), RoleCryptoUser, "alice", "wrong-password-2") }()
	close(release)
	for range 2 {
		wantRefusal(t, <-failed, ErrPinIncorrect)
	}
	if u := td.user("alice"); u.Failures() != 2 {
		t.Errorf("alice has %d failures counted, want 2", u.Failures())
	}
}
