package hsm

import (
	"bytes"
	"errors"
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
		{Name: "alice_01-x", Role: RoleCryptoUser, Failures: 300, Locked: true, hash: bytes.Repeat([]byte{7}, 58)},
		{Name: strings.Repeat("z", 31), Role: RoleAdmin, hash: []byte{9}, QuorumKey: []byte("spki")},
	} {
		b, err := u.marshal()
		noErr(t, err)
		if b[0] != userFormat {
			t.Errorf("first byte %d, want format %d", b[0], userFormat)
		}
		got, err := unmarshalUser(b)
		noErr(t, err)
		if got.Name != u.Name || got.Role != u.Role || got.Failures != u.Failures || got.Locked != u.Locked ||
			!bytes.Equal(got.hash, u.hash) || !bytes.Equal(got.QuorumKey, u.QuorumKey) {
			t.Errorf("round trip of %+v gave %+v", u, got)
		}
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
		{"truncated", good[:len(good)-1]},
		{"trailing", append(slices.Clone(good), 0)},
		{"bad role", []byte{userFormat, 3, 'b', 'o', 'b', 9, 0, 0, 1, 1, 0, 0}},
		{"bad bool", []byte{1, 3, 'b', 'o', 'b', 2, 0, 2, 1, 1, 0}},
		{"bad name", []byte{1, 3, 'b', ' ', 'b', 2, 0, 0, 1, 1, 0}},
		{"no hash", []byte{1, 3, 'b', 'o', 'b', 2, 0, 0, 0, 0}},
		{"non-canonical varint", []byte{1, 3, 'b', 'o', 'b', 2, 0x80, 0x00, 0, 1, 1, 0}},
		{"long name", append([]byte{1, 32}, bytes.Repeat([]byte{'a'}, 32)...)},
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
		{Name: "bob", Role: RoleCryptoUser, Failures: 4, Locked: true, hash: []byte{5}, QuorumKey: []byte{6, 7}},
	} {
		b, _ := u.marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := unmarshalUser(b)
		if err != nil {
			return
		}
		again, err := u.marshal()
		if err != nil {
			t.Fatalf("accepted record does not re-encode: %v", err)
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
	noErr(t, td.Logout(s))
	noErr(t, td.Login(ctx, s, RoleCryptoUser, "alice", "reset-by-admin"))

	// An admin's own password.
	noErr(t, td.ChangePassword(ctx, admin, DefaultAdminName, "admin-password-2", Approvals{}))
	loginAs(t, td, RoleAdmin, DefaultAdminName, "admin-password-2")
	if !audited(td, "user.change-password:ok") || !audited(td, "user.change-password:CKR_USER_TYPE_INVALID") {
		t.Errorf("audit: %v", td.audit.ops())
	}
}

func TestListUsers(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	cu := withCU(t, td, admin, "carol")
	withCU(t, td, admin, "bob")
	noErr(t, td.CreateUser(ctx, admin, "appl", RoleApplianceUser, cuPW, Approvals{}))
	addOwnedKey(t, td, "carol", "bob")
	addOwnedKey(t, td, "carol")
	addOwnedKey(t, td, "bob", "carol")

	// Anyone lists the users: CloudHSM needs no login for it.
	if _, err := td.ListUsers(999); !errors.Is(err, ErrSessionHandleInvalid) {
		t.Fatalf("ListUsers in an unknown session: %v", err)
	}
	for _, sid := range []SessionID{admin, cu, td.OpenSession(), NoSession} {
		users, err := td.ListUsers(sid)
		noErr(t, err)
		want := []UserInfo{
			{Name: DefaultAdminName, Role: RoleAdmin},
			{Name: "appl", Role: RoleApplianceUser},
			{Name: "bob", Role: RoleCryptoUser, OwnedKeys: 1, SharedKeys: 1},
			{Name: "carol", Role: RoleCryptoUser, OwnedKeys: 2, SharedKeys: 1},
		}
		if !slices.Equal(users, want) {
			t.Fatalf("ListUsers:\n got %+v\nwant %+v", users, want)
		}
	}
}
