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

// TestObjectWritesGoSideBySide: while one key's store write is held (a slow
// fsync), changes to other keys (an attribute change, a destruction, a
// peer's update) go through, and a second change to the held key waits for
// the first, so neither is lost; a change that spans records (a new user)
// waits for the held write.
func TestObjectWritesGoSideBySide(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	bob := withCU(t, td, admin, "bob")
	held := genAES(t, td, bob, "held")
	other := genAES(t, td, bob, "other")
	doomed := genAES(t, td, bob, "doomed")
	for uint64(other)%256 == uint64(held)%256 || uint64(doomed)%256 == uint64(held)%256 {
		t.Skip("the keys' ids share a lock stripe") // one chance in 128
	}

	writing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	td.store.beforePut = func(k RecordKind, id string) {
		if k == RecordObject && id == held.String() {
			once.Do(func() { close(writing); <-release })
		}
	}
	first := make(chan error, 1)
	go func() { first <- td.SetAttributes(ctx, bob, held, Template{String(ck.CKA_LABEL, "first")}) }()
	<-writing

	changed := make(chan error, 1)
	go func() { changed <- td.SetAttributes(ctx, bob, other, Template{String(ck.CKA_LABEL, "renamed")}) }()
	destroyed := make(chan error, 1)
	go func() { destroyed <- td.DestroyObject(ctx, bob, doomed) }()
	reloaded := make(chan error, 1)
	go func() {
		reloaded <- td.Reload(RecordObject, other.String(), func() ([]byte, error) {
			td.store.mu.Lock()
			defer td.store.mu.Unlock()
			return slices.Clone(td.store.recs[RecordObject][other.String()]), nil
		})
	}()
	for _, c := range []struct {
		name string
		c    chan error
	}{{"an attribute change of another key", changed}, {"the destruction of another key", destroyed}, {"a peer's update of another key", reloaded}} {
		select {
		case err := <-c.c:
			noErr(t, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s waits for the store write of a different key", c.name)
		}
	}

	second := make(chan error, 1)
	go func() { second <- td.SetAttributes(ctx, bob, held, Template{String(ck.CKA_ID, "second")}) }()
	userMade := make(chan error, 1)
	go func() { userMade <- td.CreateUser(ctx, admin, "carol", RoleCryptoUser, cuPW, Approvals{}) }()
	select {
	case err := <-second:
		t.Fatalf("a second change of the held key went ahead of the first (%v)", err)
	case err := <-userMade:
		t.Fatalf("a new user was made while a key's change was being written (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	noErr(t, <-first)
	noErr(t, <-second)
	noErr(t, <-userMade)
	re := td.reopen(t) // what the store kept
	re.mu.RLock()
	o := re.objects[held]
	re.mu.RUnlock()
	if got := o.Label(); got != "first" {
		t.Errorf("held key's label %q after both changes, want first", got)
	}
	if got := string(o.attrs[ck.CKA_ID]); got != "second" {
		t.Errorf("held key's id %q after both changes, want second", got)
	}
}
