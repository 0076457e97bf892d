package hsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// wantErr checks that err is a device refusal of kind, with kind's code.
func wantRefusal(t testing.TB, err error, kind *Kind) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
	if got := Code(err); got != kind.RV {
		t.Fatalf("Code(%v) = %v, want %v", err, got, kind.RV)
	}
	if _, ok := errors.AsType[*Error](err); !ok {
		t.Fatalf("err %v is not an *Error", err)
	}
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// activate activates td and returns an admin session.
func activateDevice(t testing.TB, td *testDevice) SessionID {
	t.Helper()
	s := td.OpenSession()
	noErr(t, td.Login(t.Context(), s, RoleAdmin, DefaultAdminName, DefaultPreAdminPIN))
	noErr(t, td.Activate(t.Context(), s, adminPW))
	return s
}

// login opens a session logged in as name.
func loginAs(t testing.TB, td *testDevice, role Role, name, pw string) SessionID {
	t.Helper()
	s := td.OpenSession()
	noErr(t, td.Login(t.Context(), s, role, name, pw))
	return s
}

// storedUser reads a user's record from the store.
func storedUser(t testing.TB, td *testDevice, name string) *User {
	t.Helper()
	td.store.mu.Lock()
	b, ok := td.store.recs[RecordUser][name]
	td.store.mu.Unlock()
	if !ok {
		t.Fatalf("user %q not in store", name)
	}
	u, err := unmarshalUser(b)
	noErr(t, err)
	return u
}

// addKey puts a token secret key owned by owner into the device and store.
func addOwnedKey(t testing.TB, td *testDevice, owner string, shared ...string) ObjectID {
	t.Helper()
	td.mu.Lock()
	id, err := td.newObjectID()
	td.mu.Unlock()
	noErr(t, err)
	o := &Object{id: id, class: ck.CKO_SECRET_KEY, keyType: ck.CKK_AES, owner: owner,
		shared: slices.Sorted(slices.Values(shared)), attrs: map[ck.AttributeType][]byte{}}
	o.setUlong(ck.CKA_CLASS, uint(ck.CKO_SECRET_KEY))
	o.setBool(ck.CKA_TOKEN, true)
	data, err := o.marshal()
	noErr(t, err)
	noErr(t, td.store.Put(t.Context(), RecordObject, id.String(), data))
	td.mu.Lock()
	td.objects[id] = o
	td.mu.Unlock()
	return id
}

func audited(td *testDevice, entry string) bool { return slices.Contains(td.audit.ops(), entry) }

func TestUserRecordRoundTrip(t *testing.T) {
	for _, u := range []*User{
		{Name: "admin", Role: rolePreAdmin, hash: []byte{1, 2, 3}},
		{Name: "alice_01-x", Role: RoleCryptoUser, Locked: true, hash: bytes.Repeat([]byte{7}, 58),
			passwordSet: 1e18, resetAt: 2e18, failEpoch: 3e18, failures: []failCount{{slot: 0, n: 100}, {slot: 1 << 63, n: 200}}},
		{Name: strings.Repeat("z", 31), Role: RoleAdmin, hash: []byte{9}, QuorumKey: []byte("spki")},
	} {
		b, err := u.marshal()
		noErr(t, err)
		if b[0] != userFormat {
			t.Errorf("first byte %d, want format %d", b[0], userFormat)
		}
		got, err := unmarshalUser(b)
		noErr(t, err)
		if got.Name != u.Name || got.Role != u.Role || got.Locked != u.Locked ||
			!bytes.Equal(got.hash, u.hash) || !bytes.Equal(got.QuorumKey, u.QuorumKey) ||
			got.passwordSet != u.passwordSet || got.resetAt != u.resetAt || got.failEpoch != u.failEpoch ||
			!slices.Equal(got.failures, u.failures) {
			t.Errorf("round trip of %+v gave %+v", u, got)
		}
	}
}

// legacyUser encodes a user record in format 2, as earlier versions wrote.
func legacyUser(_ testing.TB, name string, role Role, failures int, locked bool, hash, qk []byte, set int64) []byte {
	w := fieldWriter{b: []byte{userFormatSingle}}
	w.bytes([]byte(name))
	w.b = append(w.b, byte(role))
	w.uvarint(uint64(failures))
	w.bool(locked)
	w.bytes(hash)
	w.bytes(qk)
	w.uvarint(uint64(set))
	return w.b
}

// TestUserRecordFormat2: records stored by earlier versions still load,
// their single count and lock intact, and stay locked through merges.
func TestUserRecordFormat2(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int
		locked   bool
	}{
		{"clean", 0, false},
		{"failures", 3, false},
		{"locked", 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := unmarshalUser(legacyUser(t, "bob", RoleCryptoUser, tc.failures, tc.locked, []byte{5, 6}, []byte("spki"), 1234))
			noErr(t, err)
			if u.Name != "bob" || u.Role != RoleCryptoUser || u.Failures() != tc.failures || u.Locked != tc.locked ||
				!bytes.Equal(u.hash, []byte{5, 6}) || string(u.QuorumKey) != "spki" || u.passwordSet != 1234 {
				t.Fatalf("format 2 record read as %+v", u)
			}
			if u.resetAt != 1234 || u.failEpoch != 1234 {
				t.Fatalf("epochs %d, %d: want the password's time", u.resetAt, u.failEpoch)
			}
			b, err := u.marshal()
			noErr(t, err)
			if b[0] != userFormat {
				t.Fatalf("rewritten in format %d", b[0])
			}
		})
	}
}

func TestUserRecordRejects(t *testing.T) {
	good, err := (&User{Name: "bob", Role: RoleCryptoUser, hash: []byte{1}}).marshal()
	noErr(t, err)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version", append([]byte{userFormat + 1}, good[1:]...)},
		{"format 1", append([]byte{1}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(slices.Clone(good), 0)},
		{"bad role", []byte{userFormat, 3, 'b', 'o', 'b', 9, 0, 1, 1, 0, 0, 0, 0, 0}},
		{"bad bool", []byte{userFormat, 3, 'b', 'o', 'b', 2, 2, 1, 1, 0, 0, 0, 0, 0}},
		{"bad name", []byte{userFormat, 3, 'b', ' ', 'b', 2, 0, 1, 1, 0, 0, 0, 0, 0}},
		{"no hash", []byte{userFormat, 3, 'b', 'o', 'b', 2, 0, 0, 0, 0, 0, 0, 0}},
		{"non-canonical varint", []byte{userFormat, 3, 'b', 'o', 'b', 2, 0, 1, 1, 0, 0x80, 0x00, 0, 0, 0}},
		{"long name", append([]byte{userFormat, 32}, bytes.Repeat([]byte{'a'}, 32)...)},
		{"zero count", []byte{userFormat, 3, 'b', 'o', 'b', 2, 0, 1, 1, 0, 0, 0, 0, 1, 5, 0}},
		{"slots out of order", []byte{userFormat, 3, 'b', 'o', 'b', 2, 0, 1, 1, 0, 0, 0, 0, 2, 5, 1, 4, 1}},
		{"slot twice", []byte{userFormat, 3, 'b', 'o', 'b', 2, 0, 1, 1, 0, 0, 0, 0, 2, 5, 1, 5, 1}},
		{"time above int64", []byte{userFormat, 3, 'b', 'o', 'b', 2, 0, 1, 1, 0,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0}},
		{"format 2 bad bool", []byte{userFormatSingle, 3, 'b', 'o', 'b', 2, 0, 2, 1, 1, 0, 0}},
		{"format 2 trailing", []byte{userFormatSingle, 3, 'b', 'o', 'b', 2, 0, 0, 1, 1, 0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if u, err := unmarshalUser(tc.b); err == nil {
				t.Fatalf("unmarshalUser(%x) = %+v, want error", tc.b, u)
			}
		})
	}
	if _, err := (&User{Name: "bad name", Role: RoleAdmin, hash: []byte{1}}).marshal(); err == nil {
		t.Error("marshal of an invalid user succeeded")
	}
}

func FuzzUnmarshalUser(f *testing.F) {
	for _, u := range []*User{
		{Name: "admin", Role: rolePreAdmin, hash: []byte{1, 2, 3}},
		{Name: "bob", Role: RoleCryptoUser, Locked: true, hash: []byte{5}, QuorumKey: []byte{6, 7},
			failEpoch: 9, failures: []failCount{{slot: 3, n: 4}, {slot: 8, n: 1}}},
	} {
		b, _ := u.marshal()
		f.Add(b)
	}
	f.Add(legacyUser(f, "bob", RoleCryptoUser, 3, true, []byte{5}, nil, 77))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := unmarshalUser(b)
		if err != nil {
			return
		}
		again, err := u.marshal()
		if err != nil {
			t.Fatalf("accepted record does not re-encode: %v", err)
		}
		if b[0] == userFormatSingle {
			// An old record is rewritten in the current format, once.
			if u2, err := unmarshalUser(again); err != nil || !reflect.DeepEqual(u, u2) {
				t.Fatalf("format 2 record %x re-encodes as %x, which reads back as %+v, %v", b, again, u2, err)
			}
			return
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("record %x re-encodes as %x", b, again)
		}
	})
}

func TestPreAdminAndActivation(t *testing.T) {
	ctx := t.Context()
	td := newTestDevice(t)
	if td.Activated() {
		t.Fatal("new device is activated")
	}
	if u := storedUser(t, td, DefaultAdminName); u.Role != rolePreAdmin {
		t.Fatalf("stored pre-admin role %v", u.Role)
	}
	s := td.OpenSession()

	// Nobody but the pre-admin logs in before activation.
	wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW), ErrNotActivated)
	wantRefusal(t, td.Activate(ctx, s, adminPW), ErrNotLoggedIn)
	wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, DefaultAdminName, DefaultPreAdminPIN), ErrPinIncorrect)
	noErr(t, td.Login(ctx, s, RoleAdmin, DefaultAdminName, DefaultPreAdminPIN))

	// The pre-admin can do nothing but activate.
	wantRefusal(t, td.CreateUser(ctx, s, "alice", RoleCryptoUser, cuPW, Approvals{}), ErrNotActivated)
	wantRefusal(t, td.ChangePassword(ctx, s, DefaultAdminName, adminPW, Approvals{}), ErrNotActivated)
	if _, err := td.QuorumToken(ctx, s, QuorumUserManagement); !errors.Is(err, ErrNotActivated) {
		t.Fatalf("QuorumToken as pre-admin: %v", err)
	}
	users, err := td.ListUsers(s)
	noErr(t, err)
	if len(users) != 1 || users[0].Role != rolePreAdmin {
		t.Fatalf("users before activation: %+v", users)
	}

	for _, tc := range []struct{ name, pw string }{
		{"default password", DefaultPreAdminPIN},
		{"too short", "short"},
		{"too long", strings.Repeat("x", 33)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, td.Activate(ctx, s, tc.pw), ErrPinInvalid)
		})
	}
	noErr(t, td.Activate(ctx, s, adminPW))
	if !td.Activated() {
		t.Fatal("not activated after Activate")
	}
	// The session is an admin now.
	noErr(t, td.CreateUser(ctx, s, "alice", RoleCryptoUser, cuPW, Approvals{}))
	wantRefusal(t, td.Activate(ctx, s, "another-password"), ErrRoleNotPermitted)

	// Persisted: after a restart the cluster is active and admin has its password.
	td2 := td.reopen(t)
	if !td2.Activated() {
		t.Fatal("activation lost on reopen")
	}
	s2 := td2.OpenSession()
	wantRefusal(t, td2.Login(ctx, s2, RoleAdmin, DefaultAdminName, DefaultPreAdminPIN), ErrPinIncorrect)
	noErr(t, td2.Login(ctx, s2, RoleAdmin, DefaultAdminName, adminPW))
	if u := storedUser(t, td2, DefaultAdminName); u.Role != RoleAdmin {
		t.Fatalf("admin role after activation %v", u.Role)
	}
	for _, op := range []string{"activate:ok", "activate:CKR_PIN_LEN_RANGE", "login:CKR_USER_PIN_NOT_INITIALIZED"} {
		if !audited(td, op) {
			t.Errorf("audit lacks %s: %v", op, td.audit.ops())
		}
	}
}

func TestLoginRefusals(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	noErr(t, td.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
	noErr(t, td.CreateUser(ctx, admin, "appl", RoleApplianceUser, cuPW, Approvals{}))
	tests := []struct {
		name           string
		role           Role
		user, password string
		want           *Kind
	}{
		{"wrong password", RoleCryptoUser, "alice", "wrong-password", ErrPinIncorrect},
		{"unknown user", RoleCryptoUser, "mallory", cuPW, ErrPinIncorrect},
		{"role mismatch", RoleAdmin, "alice", cuPW, ErrPinIncorrect},
		{"admin as crypto user", RoleCryptoUser, DefaultAdminName, adminPW, ErrPinIncorrect},
		{"appliance as crypto user", RoleCryptoUser, "appl", cuPW, ErrPinIncorrect},
		{"invalid role", rolePreAdmin, DefaultAdminName, adminPW, ErrUserTypeInvalid},
		{"zero role", 0, "alice", cuPW, ErrUserTypeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := td.OpenSession()
			wantRefusal(t, td.Login(ctx, s, tc.role, tc.user, tc.password), tc.want)
			wantRefusal(t, td.Logout(s), ErrNotLoggedIn)
		})
	}
	// An unknown user and a wrong password are indistinguishable.
	s := td.OpenSession()
	e1 := td.Login(ctx, s, RoleCryptoUser, "nobody", cuPW)
	e2 := td.Login(ctx, s, RoleCryptoUser, "alice", "wrong-password")
	if e1.Error() != e2.Error() {
		t.Errorf("unknown user %q differs from wrong password %q", e1, e2)
	}
	// Already logged in; then a fresh login after logout.
	noErr(t, td.Login(ctx, s, RoleApplianceUser, "appl", cuPW))
	wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW), ErrAlreadyLoggedIn)
	noErr(t, td.Logout(s))
	wantRefusal(t, td.Logout(s), ErrNotLoggedIn)
	noErr(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW))
	// A closed session.
	noErr(t, td.CloseSession(s))
	wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW), ErrSessionHandleInvalid)
	wantRefusal(t, td.Logout(s), ErrSessionHandleInvalid)
	if !audited(td, "login:CKR_PIN_INCORRECT") || !audited(td, "logout:ok") {
		t.Errorf("audit lacks login failure or logout: %v", td.audit.ops())
	}
}

func TestCreateUser(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	cu := withCU(t, td, admin, "alice")
	tests := []struct {
		name     string
		sid      SessionID
		user     string
		role     Role
		password string
		want     *Kind
	}{
		{"crypto user", cu, "bob", RoleCryptoUser, cuPW, ErrRoleNotPermitted},
		{"not logged in", td.OpenSession(), "bob", RoleCryptoUser, cuPW, ErrNotLoggedIn},
		{"no session", 9999, "bob", RoleCryptoUser, cuPW, ErrSessionHandleInvalid},
		{"empty name", admin, "", RoleCryptoUser, cuPW, ErrArgumentsBad},
		{"long name", admin, strings.Repeat("b", 32), RoleCryptoUser, cuPW, ErrArgumentsBad},
		{"space in name", admin, "bo b", RoleCryptoUser, cuPW, ErrArgumentsBad},
		{"non-ASCII name", admin, "bøb", RoleCryptoUser, cuPW, ErrArgumentsBad},
		{"pre-admin role", admin, "bob", rolePreAdmin, cuPW, ErrUserTypeInvalid},
		{"zero role", admin, "bob", 0, cuPW, ErrUserTypeInvalid},
		{"short password", admin, "bob", RoleCryptoUser, "123456", ErrPinInvalid},
		{"long password", admin, "bob", RoleCryptoUser, strings.Repeat("p", 33), ErrPinInvalid},
		{"exists", admin, "alice", RoleCryptoUser, cuPW, ErrUserExists},
		{"exists as admin", admin, DefaultAdminName, RoleAdmin, cuPW, ErrUserExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, td.CreateUser(ctx, tc.sid, tc.user, tc.role, tc.password, Approvals{}), tc.want)
			if tc.user != "alice" && tc.user != DefaultAdminName && td.user(tc.user) != nil {
				t.Fatalf("refused user %q exists", tc.user)
			}
		})
	}
	for _, tc := range []struct {
		name string
		role Role
	}{{strings.Repeat("B", 31), RoleCryptoUser}, {"Ops_admin-2", RoleAdmin}, {"appliance", RoleApplianceUser}} {
		noErr(t, td.CreateUser(ctx, admin, tc.name, tc.role, "seven77", Approvals{}))
		if u := storedUser(t, td, tc.name); u.Role != tc.role {
			t.Fatalf("stored role %v, want %v", u.Role, tc.role)
		}
		loginAs(t, td, tc.role, tc.name, "seven77")
	}
	for _, op := range []string{"user.create:ok", "user.create:CKR_USER_TYPE_INVALID", "user.create:CKR_FUNCTION_FAILED"} {
		if !audited(td, op) {
			t.Errorf("audit lacks %s", op)
		}
	}
}

func TestDeleteUser(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	bob := withCU(t, td, admin, "bob")
	shared := addOwnedKey(t, td, "alice", "bob")
	addOwnedKey(t, td, "alice")

	wantRefusal(t, td.DeleteUser(ctx, admin, DefaultAdminName, false, Approvals{}), ErrCannotDeleteSelf)
	wantRefusal(t, td.DeleteUser(ctx, admin, "nobody", false, Approvals{}), ErrUserNotFound)
	wantRefusal(t, td.DeleteUser(ctx, bob, "alice", false, Approvals{}), ErrRoleNotPermitted)
	wantRefusal(t, td.DeleteUser(ctx, td.OpenSession(), "alice", false, Approvals{}), ErrNotLoggedIn)

	err := td.DeleteUser(ctx, admin, "alice", false, Approvals{})
	wantRefusal(t, err, ErrUserOwnsKeys)
	if !strings.Contains(err.Error(), "2 token keys") {
		t.Errorf("message does not count the keys: %v", err)
	}
	// bob owns nothing (a key shared with him is not his). Deleting him
	// withdraws the share, so a new bob does not inherit it.
	noErr(t, td.DeleteUser(ctx, admin, "bob", false, Approvals{}))
	wantRefusal(t, td.Logout(bob), ErrNotLoggedIn)
	td.mu.RLock()
	sharedWithBob := td.objects[shared].sharedWith("bob")
	td.mu.RUnlock()
	if sharedWithBob {
		t.Fatal("key still shared with deleted bob")
	}
	td2 := td.reopen(t)
	td2.mu.RLock()
	sharedWithBob = td2.objects[shared].sharedWith("bob")
	td2.mu.RUnlock()
	if sharedWithBob {
		t.Fatal("stored key still shared with deleted bob")
	}
	noErr(t, td.CreateUser(ctx, admin, "bob", RoleCryptoUser, cuPW, Approvals{}))

	noErr(t, td.DeleteUser(ctx, admin, "alice", true, Approvals{}))
	if td.user("alice") != nil {
		t.Fatal("alice still in the table")
	}
	td.store.mu.Lock()
	_, stored := td.store.recs[RecordUser]["alice"]
	td.store.mu.Unlock()
	if stored {
		t.Fatal("alice still in the store")
	}
	if _, err := td.QuorumValues(alice); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("deleted user's session still logged in: %v", err)
	}
	var target string
	td.audit.mu.Lock()
	for _, ev := range td.audit.events {
		if ev.Op == "user.delete" && ev.Result == "ok" && strings.HasPrefix(ev.Target, "alice") {
			target = ev.Target
		}
	}
	td.audit.mu.Unlock()
	if !strings.Contains(target, "2 owned keys left unusable") {
		t.Errorf("audit target %q does not say keys were left unusable", target)
	}
	wantRefusal(t, td.Login(ctx, alice, RoleCryptoUser, "alice", cuPW), ErrPinIncorrect)
	// Her keys keep her name, so the name cannot be reused.
	err = td.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{})
	wantRefusal(t, err, ErrUserExists)
	if !strings.Contains(err.Error(), "2 keys of a deleted user") {
		t.Errorf("message: %v", err)
	}
	if !audited(td, "user.delete:CKR_FUNCTION_FAILED") {
		t.Error("refused delete not audited")
	}
}

func TestDeleteAdminKeepsQuorumPlusTwo(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	for _, n := range []string{"a2", "a3"} {
		noErr(t, td.CreateUser(ctx, admin, n, RoleAdmin, adminPW, Approvals{}))
	}
	// 3 admins, M = 1: deleting one would leave 2 < 3.
	err := td.DeleteUser(ctx, admin, "a3", false, Approvals{})
	wantRefusal(t, err, ErrLastAdmins)
	noErr(t, td.CreateUser(ctx, admin, "a4", RoleAdmin, adminPW, Approvals{}))
	noErr(t, td.DeleteUser(ctx, admin, "a4", false, Approvals{}))
	wantRefusal(t, td.DeleteUser(ctx, admin, "a3", false, Approvals{}), ErrLastAdmins)
	noErr(t, td.DeleteUser(ctx, admin, "a3", true, Approvals{}))
	if td.adminCount() != 2 {
		t.Fatalf("admins %d, want 2", td.adminCount())
	}
}

func TestChangePassword(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	withCU(t, td, admin, "bob")

	wantRefusal(t, td.ChangePassword(ctx, alice, "bob", "bobs-new-pw", Approvals{}), ErrRoleNotPermitted)
	wantRefusal(t, td.ChangePassword(ctx, alice, "alice", "short", Approvals{}), ErrPinInvalid)
	wantRefusal(t, td.ChangePassword(ctx, td.OpenSession(), "alice", "alices-new-pw", Approvals{}), ErrNotLoggedIn)
	wantRefusal(t, td.ChangePassword(ctx, admin, "nobody", "nobodys-new-pw", Approvals{}), ErrUserNotFound)

	// Own password, then an admin's reset of it.
	noErr(t, td.ChangePassword(ctx, alice, "alice", "alices-new-pw", Approvals{}))
	s := td.OpenSession()
	wantRefusal(t, td.Login(ctx, s, RoleCryptoUser, "alice", cuPW), ErrPinIncorrect)
	noErr(t, td.Login(ctx, s, RoleCryptoUser, "alice", "alices-new-pw"))
	noErr(t, td.ChangePassword(ctx, admin, "alice", "reset-by-admin", Approvals{}))
	wantRefusal(t, td.Logout(s), ErrNotLoggedIn) // the reset ended her login
	noErr(t, td.Login(ctx, s, RoleCryptoUser, "alice", "reset-by-admin"))

	// An admin's own password.
	noErr(t, td.ChangePassword(ctx, admin, DefaultAdminName, "admin-password-2", Approvals{}))
	loginAs(t, td, RoleAdmin, DefaultAdminName, "admin-password-2")
	if !audited(td, "user.change-password:ok") || !audited(td, "user.change-password:CKR_USER_TYPE_INVALID") {
		t.Errorf("audit: %v", td.audit.ops())
	}
}

// TestListUsers: everyone lists names and roles; only a logged-in admin
// sees who is locked, failure counts, quorum keys and key counts.
func TestListUsers(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	withCU(t, td, admin, "carol")
	cu := withCU(t, td, admin, "bob")
	noErr(t, td.CreateUser(ctx, admin, "appl", RoleApplianceUser, cuPW, Approvals{}))
	noErr(t, td.CreateUser(ctx, admin, "dave", RoleCryptoUser, cuPW, Approvals{}))
	appl := loginAs(t, td, RoleApplianceUser, "appl", cuPW)
	addOwnedKey(t, td, "carol", "bob")
	addOwnedKey(t, td, "carol")
	addOwnedKey(t, td, "bob", "carol")
	for range 2 {
		wantRefusal(t, td.Login(ctx, td.OpenSession(), RoleCryptoUser, "dave", "wrong-password"), ErrPinIncorrect)
	}
	for range td.cfg.MaxLoginFailures {
		wantRefusal(t, td.Login(ctx, td.OpenSession(), RoleCryptoUser, "carol", "wrong-password"), ErrPinIncorrect)
	}

	if _, err := td.ListUsers(999); !errors.Is(err, ErrSessionHandleInvalid) {
		t.Fatalf("ListUsers in an unknown session: %v", err)
	}
	names := []UserInfo{
		{Name: DefaultAdminName, Role: RoleAdmin},
		{Name: "appl", Role: RoleApplianceUser},
		{Name: "bob", Role: RoleCryptoUser},
		{Name: "carol", Role: RoleCryptoUser},
		{Name: "dave", Role: RoleCryptoUser},
	}
	full := []UserInfo{
		{Name: DefaultAdminName, Role: RoleAdmin},
		{Name: "appl", Role: RoleApplianceUser},
		{Name: "bob", Role: RoleCryptoUser, OwnedKeys: 1, SharedKeys: 1},
		{Name: "carol", Role: RoleCryptoUser, Locked: true, Failures: td.cfg.MaxLoginFailures, OwnedKeys: 2, SharedKeys: 1},
		{Name: "dave", Role: RoleCryptoUser, Failures: 2},
	}
	tests := []struct {
		name string
		sid  SessionID
		want []UserInfo
	}{
		{"admin", admin, full},
		{"crypto user", cu, names},
		{"appliance user", appl, names},
		{"not logged in", td.OpenSession(), names},
		{"no session", NoSession, names},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users, err := td.ListUsers(tc.sid)
			noErr(t, err)
			if !slices.Equal(users, tc.want) {
				t.Fatalf("ListUsers:\n got %+v\nwant %+v", users, tc.want)
			}
		})
	}
}

// peerOf returns a second HSM of td's cluster: a device over a copy of td's
// store, as a node that cloned td has.
func peerOf(t testing.TB, td *testDevice) *testDevice {
	t.Helper()
	st, au := newMemStore(), &memAudit{}
	td.store.mu.Lock()
	for k, recs := range td.store.recs {
		for id, b := range recs {
			if st.recs[k] == nil {
				st.recs[k] = map[string][]byte{}
			}
			st.recs[k][id] = slices.Clone(b)
		}
	}
	td.store.mu.Unlock()
	d, err := New(t.Context(), Config{Store: st, Audit: au, Password: testCost, MaxLoginFailures: td.cfg.MaxLoginFailures})
	noErr(t, err)
	return &testDevice{d, st, au}
}

// deliver replicates from's record of user name to to, as peersync does:
// the record replaces to's stored one, then to's device reloads it (and may
// write a merge back into its store).
func deliver(t testing.TB, from, to *testDevice, name string) {
	t.Helper()
	from.store.mu.Lock()
	b := slices.Clone(from.store.recs[RecordUser][name])
	from.store.mu.Unlock()
	noErr(t, to.store.Put(t.Context(), RecordUser, name, b))
	noErr(t, to.Reload(RecordUser, name, func() ([]byte, error) { return slices.Clone(b), nil }))
}

// exchange delivers name's record between a and b until both store the same
// one, as peersync's pushes and anti-entropy do; merges must settle in a few
// rounds.
func exchange(t testing.TB, a, b *testDevice, name string) {
	t.Helper()
	for range 4 {
		deliver(t, a, b, name)
		deliver(t, b, a, name)
		a.store.mu.Lock()
		ra := slices.Clone(a.store.recs[RecordUser][name])
		a.store.mu.Unlock()
		b.store.mu.Lock()
		rb := slices.Clone(b.store.recs[RecordUser][name])
		b.store.mu.Unlock()
		if bytes.Equal(ra, rb) {
			return
		}
	}
	t.Fatalf("records of %q still differ after 4 exchanges", name)
}

func wrongLogins(t testing.TB, td *testDevice, name string, n int) {
	t.Helper()
	for range n {
		wantRefusal(t, td.Login(t.Context(), td.OpenSession(), RoleCryptoUser, name, "wrong-password"), ErrPinIncorrect)
	}
}

// TestLockoutIsClusterWide: failed logins on different HSMs add up against
// the limit, and a lock comes undone only by a newer reset, never by a merge.
func TestLockoutIsClusterWide(t *testing.T) {
	ctx := t.Context()
	a, admin := activated(t)
	noErr(t, a.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
	b := peerOf(t, a)
	limit := a.cfg.MaxLoginFailures // 5

	locked := func(td *testDevice) bool { return td.user("alice").Locked }
	state := func() string {
		return fmt.Sprintf("a: %d failures, locked %v; b: %d failures, locked %v",
			a.user("alice").Failures(), locked(a), b.user("alice").Failures(), locked(b))
	}

	// Guesses on both sides of a partition: 4 + 4 is over 5.
	wrongLogins(t, a, "alice", limit-1)
	wrongLogins(t, b, "alice", limit-1)
	exchange(t, a, b, "alice")
	if !locked(a) || !locked(b) || a.user("alice").Failures() != 2*(limit-1) {
		t.Fatalf("after %d + %d failures: %s", limit-1, limit-1, state())
	}
	for _, td := range []*testDevice{a, b} {
		wantRefusal(t, td.Login(ctx, td.OpenSession(), RoleCryptoUser, "alice", cuPW), ErrPinLocked)
	}

	// An admin's reset on b unlocks everywhere, and a stale record from
	// before it (a failure a counted just before the reset arrived) brings
	// neither the lock nor the old failures back.
	a.store.mu.Lock()
	stale := slices.Clone(a.store.recs[RecordUser]["alice"])
	a.store.mu.Unlock()
	badmin := loginAs(t, b, RoleAdmin, DefaultAdminName, adminPW)
	noErr(t, b.ChangePassword(ctx, badmin, "alice", "reset-password", Approvals{}))
	exchange(t, a, b, "alice")
	noErr(t, b.store.Put(ctx, RecordUser, "alice", stale))
	noErr(t, b.Reload(RecordUser, "alice", func() ([]byte, error) { return stale, nil }))
	exchange(t, a, b, "alice")
	if locked(a) || locked(b) || a.user("alice").Failures() != 0 || b.user("alice").Failures() != 0 {
		t.Fatalf("after the reset and a stale record: %s", state())
	}

	// Counts add up across HSMs in turn, too: 2 on a, 2 on b, then the
	// fifth on a locks, on both.
	wrongLogins(t, a, "alice", 2)
	exchange(t, a, b, "alice")
	wrongLogins(t, b, "alice", 2)
	exchange(t, a, b, "alice")
	if locked(a) || locked(b) || b.user("alice").Failures() != 4 {
		t.Fatalf("after 4 failures: %s", state())
	}
	wrongLogins(t, a, "alice", 1)
	exchange(t, a, b, "alice")
	if !locked(a) || !locked(b) {
		t.Fatalf("after %d failures: %s", limit, state())
	}

}

// TestMergeNeverUnlocks: a lock on one HSM races a successful login on
// another, which clears the counts there and is written later: the merge
// keeps the lock, whichever record arrives first.
func TestMergeNeverUnlocks(t *testing.T) {
	for _, laterFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("later record first=%v", laterFirst), func(t *testing.T) {
			ctx := t.Context()
			a, admin := activated(t)
			noErr(t, a.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
			b := peerOf(t, a)
			wrongLogins(t, b, "alice", 1)
			exchange(t, b, a, "alice")
			wrongLogins(t, a, "alice", a.cfg.MaxLoginFailures-1) // locks on a
			loginAs(t, b, RoleCryptoUser, "alice", cuPW)         // clears b's count
			if !a.user("alice").Locked || b.user("alice").Locked || b.user("alice").Failures() != 0 {
				t.Fatal("setup: want alice locked on a only, with no failures on b")
			}
			if laterFirst {
				exchange(t, b, a, "alice")
			} else {
				exchange(t, a, b, "alice")
			}
			for _, td := range []*testDevice{a, b} {
				wantRefusal(t, td.Login(ctx, td.OpenSession(), RoleCryptoUser, "alice", cuPW), ErrPinLocked)
			}
		})
	}
}

// TestResetAndLockEndSessions: an admin's password reset, or a lock, logs
// out every session of the user, on this HSM and, once the change arrives,
// on its peers; the user's own password change does not.
func TestResetAndLockEndSessions(t *testing.T) {
	ctx := t.Context()
	a, admin := activated(t)
	noErr(t, a.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
	b := peerOf(t, a)
	loggedIn := func(td *testDevice, s SessionID) bool {
		_, p, err := td.whoami(s)
		return err == nil && p != nil
	}
	tests := []struct {
		name   string
		change func(t *testing.T)
		ends   bool
	}{
		{"own password change", func(t *testing.T) {
			s := loginAs(t, a, RoleCryptoUser, "alice", cuPW)
			noErr(t, a.ChangePassword(ctx, s, "alice", cuPW, Approvals{}))
		}, false},
		{"admin reset", func(t *testing.T) {
			noErr(t, a.ChangePassword(ctx, admin, "alice", cuPW, Approvals{}))
		}, true},
		{"lock", func(t *testing.T) {
			wrongLogins(t, a, "alice", a.cfg.MaxLoginFailures)
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			onA := loginAs(t, a, RoleCryptoUser, "alice", cuPW)
			onB := loginAs(t, b, RoleCryptoUser, "alice", cuPW)
			exchange(t, a, b, "alice")
			tc.change(t)
			if got := loggedIn(a, onA); got == tc.ends {
				t.Errorf("session on the HSM of the change: logged in %v, want %v", got, !tc.ends)
			}
			exchange(t, a, b, "alice")
			if got := loggedIn(b, onB); got == tc.ends {
				t.Errorf("session on the peer: logged in %v, want %v", got, !tc.ends)
			}
			noErr(t, a.ChangePassword(ctx, admin, "alice", cuPW, Approvals{})) // unlock for the next case
			exchange(t, a, b, "alice")
		})
	}
}

// TestRecoverAdmin: with every admin locked, the offline recovery unlocks a
// named admin, is audited, and its unlock wins the merge with a peer that
// still holds the lock (and counted more failures meanwhile).
func TestRecoverAdmin(t *testing.T) {
	ctx := t.Context()
	a, admin := activated(t)
	noErr(t, a.CreateUser(ctx, admin, "alice", RoleCryptoUser, cuPW, Approvals{}))
	b := peerOf(t, a)
	for range a.cfg.MaxLoginFailures {
		wantRefusal(t, a.Login(ctx, a.OpenSession(), RoleAdmin, DefaultAdminName, "wrong-password"), ErrPinIncorrect)
	}
	exchange(t, a, b, DefaultAdminName)
	for _, td := range []*testDevice{a, b} {
		wantRefusal(t, td.Login(ctx, td.OpenSession(), RoleAdmin, DefaultAdminName, adminPW), ErrPinLocked)
	}

	tests := []struct {
		name string
		user string
		want *Kind
	}{
		{"unknown", "nobody", ErrUserNotFound},
		{"crypto user", "alice", ErrRoleNotPermitted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, a.RecoverAdmin(ctx, tc.user), tc.want)
		})
	}
	// a is the stopped node; b still holds the locked record.
	noErr(t, a.RecoverAdmin(ctx, DefaultAdminName))
	if !audited(a, "user.recover-admin:ok") || !audited(a, "user.recover-admin:CKR_ARGUMENTS_BAD") {
		t.Errorf("audit: %v", a.audit.ops())
	}
	if u := storedUser(t, a, DefaultAdminName); u.Locked || u.Failures() != 0 {
		t.Fatalf("stored after recovery: locked %v, %d failures", u.Locked, u.Failures())
	}
	exchange(t, b, a, DefaultAdminName)
	for _, td := range []*testDevice{a, b} {
		loginAs(t, td, RoleAdmin, DefaultAdminName, adminPW)
	}
}
