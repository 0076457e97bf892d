package hsm

import (
	"errors"
	"testing"
	"time"
)

// TestShareWithUserBeingDeleted (finding): a share that checked its user
// just before an admin deleted that user must not land after the deletion
// withdrew the user's shares, or a crypto user made later under the same
// name would inherit the key. The deletion is held in its store write
// (with the device's write lock held, as a slow fsync holds it) while the
// share is made.
func TestShareWithUserBeingDeleted(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	withCU(t, td, admin, "bob")
	key := genAES(t, td, alice, "to share")

	deleting, release := make(chan struct{}), make(chan struct{})
	td.store.beforeDelete = func(k RecordKind, id string) {
		if k == RecordUser && id == "bob" {
			close(deleting)
			<-release
		}
	}
	deleted := make(chan error, 1)
	go func() { deleted <- td.DeleteUser(ctx, admin, "bob", false, Approvals{}) }()
	<-deleting
	shared := make(chan error, 1)
	go func() { shared <- td.ShareKey(ctx, alice, key, "bob") }()
	time.Sleep(50 * time.Millisecond) // the share checks bob, then waits for the lock
	close(release)
	noErr(t, <-deleted)
	err := <-shared
	td.mu.RLock()
	stillShared := td.objects[key].sharedWith("bob")
	td.mu.RUnlock()
	if stillShared {
		t.Fatalf("the key is shared with deleted bob (ShareKey: %v)", err)
	}
	if !errors.Is(err, ErrUserNotFound) {
		t.Errorf("ShareKey with bob deleted meanwhile: %v, want ErrUserNotFound", err)
	}
}

// TestNewUserInheritsNoShare: a key record still shared with a deleted
// user's name (a share made on another HSM before it learnt of the
// deletion, replicated after it) passes nothing to a new user of that name.
func TestNewUserInheritsNoShare(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	withCU(t, td, admin, "alice")
	stale := addOwnedKey(t, td, "alice", "bob") // as a peer's record would bring it
	td = td.reopen(t)
	admin = td.OpenSession()
	noErr(t, td.Login(ctx, admin, RoleAdmin, DefaultAdminName, adminPW))
	noErr(t, td.CreateUser(ctx, admin, "bob", RoleCryptoUser, cuPW, Approvals{}))
	td.mu.RLock()
	inherited := td.objects[stale].sharedWith("bob")
	td.mu.RUnlock()
	if inherited {
		t.Fatal("the new bob inherited a share made for a deleted bob")
	}
	if td2 := td.reopen(t); func() bool { td2.mu.RLock(); defer td2.mu.RUnlock(); return td2.objects[stale].sharedWith("bob") }() {
		t.Fatal("the stored key is still shared with bob")
	}
}
