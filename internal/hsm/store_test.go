package hsm

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
	"github.com/coffer-hsm/coffer/internal/store"
)

// sealedStore runs the device over the real sealed, fsync'd store, as a node
// does.
type sealedStore struct{ s *store.Store }

func (a sealedStore) Put(ctx context.Context, k RecordKind, id string, data []byte) error {
	_, err := a.s.Put(ctx, store.Kind(k), id, data)
	return err
}

func (a sealedStore) Delete(ctx context.Context, k RecordKind, id string) error {
	_, err := a.s.Delete(ctx, store.Kind(k), id)
	return err
}

func (a sealedStore) Scan(ctx context.Context, k RecordKind, fn func(string, []byte) error) error {
	return a.s.Scan(ctx, store.Kind(k), func(r store.Record) error { return fn(r.ID, r.Data) })
}

func openSealed(t testing.TB, dir string) *store.Store {
	t.Helper()
	ctx := t.Context()
	keyPath := filepath.Join(dir, "node.key")
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		if err := store.CreateNodeKey(keyPath); err != nil {
			t.Fatal(err)
		}
	}
	s, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "hsm.db"), NodeKeyPath: keyPath, Node: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasMaskingKey() {
		mk := make([]byte, 32)
		rand.Read(mk)
		if err := s.SetMaskingKey(ctx, mk); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestDeviceOverSealedStore(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	st := openSealed(t, dir)
	d, err := New(ctx, Config{Store: sealedStore{st}, Audit: &memAudit{}, Password: testCost})
	if err != nil {
		t.Fatal(err)
	}
	s := d.OpenSession()
	if err := d.Login(ctx, s, RoleAdmin, DefaultAdminName, DefaultPreAdminPIN); err != nil {
		t.Fatal(err)
	}
	if err := d.Activate(ctx, s, adminPW); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateUser(ctx, s, "alice", RoleCryptoUser, cuPW, Approvals{}); err != nil {
		t.Fatal(err)
	}
	cu := d.OpenSession()
	if err := d.Login(ctx, cu, RoleCryptoUser, "alice", cuPW); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := d.GenerateKeyPair(ctx, cu, Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
		Template{Bool(ck.CKA_TOKEN, true), Bytes(ck.CKA_EC_PARAMS, curveParams(p256()))}, Template{Bool(ck.CKA_TOKEN, true), String(ck.CKA_LABEL, "durable")})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("m")
	sig, err := d.Sign(cu, priv, Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: users, activation and keys come back from the sealed store.
	st = openSealed(t, dir)
	defer st.Close()
	d, err = New(ctx, Config{Store: sealedStore{st}, Audit: &memAudit{}, Password: testCost})
	if err != nil {
		t.Fatal(err)
	}
	cu = d.OpenSession()
	if err := d.Login(ctx, cu, RoleCryptoUser, "alice", cuPW); err != nil {
		t.Fatalf("login after reopen: %v", err)
	}
	if err := d.Verify(cu, pub, Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg, sig); err != nil {
		t.Fatalf("key after reopen: %v", err)
	}
	ids, err := d.FindObjects(cu, Template{String(ck.CKA_LABEL, "durable")})
	if err != nil || len(ids) != 1 || ids[0] != priv {
		t.Fatalf("find after reopen: %v %v", ids, err)
	}
}

// A user deleted on another HSM (a replicated tombstone) is logged out of
// this one's sessions at once.
func TestReloadedUserDeletionLogsOut(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	key := genAES(t, td, alice, "k")
	if err := td.Reload(RecordUser, "alice", func() ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	_, err := td.Sign(alice, key, Mechanism{Type: ck.CKM_AES_CMAC}, []byte("m"))
	wantErr(t, err, ErrNotLoggedIn)
	if err := td.Login(t.Context(), td.OpenSession(), RoleCryptoUser, "alice", cuPW); !errors.Is(err, ErrPinIncorrect) {
		t.Fatalf("login of a deleted user: %v", err)
	}
}

// A failed login counted on another HSM before a password change reached it
// comes back with the old password; the newer password must survive.
func TestReloadKeepsNewerPassword(t *testing.T) {
	td, admin := activated(t)
	ctx := t.Context()
	withCU(t, td, admin, "alice")
	old, err := unmarshalUser(td.store.recs[RecordUser]["alice"])
	if err != nil {
		t.Fatal(err)
	}
	if err := td.ChangePassword(ctx, admin, "alice", "changed-password", Approvals{}); err != nil {
		t.Fatal(err)
	}
	old.countFailure(42) // what the other HSM wrote after a failed login
	stale, err := old.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := td.Reload(RecordUser, "alice", func() ([]byte, error) { return stale, nil }); err != nil {
		t.Fatal(err)
	}
	if err := td.Login(ctx, td.OpenSession(), RoleCryptoUser, "alice", "changed-password"); err != nil {
		t.Fatalf("the newer password was lost: %v", err)
	}
	stored, err := unmarshalUser(td.store.recs[RecordUser]["alice"])
	if err != nil {
		t.Fatal(err)
	}
	if stored.passwordSet <= old.passwordSet {
		t.Fatal("the merged record was not written back")
	}
	// A record with the newer password replaces the local one as usual.
	newer := stored.clone()
	newer.passwordSet++
	newer.failures = []failCount{{slot: 7, n: 2}}
	b, _ := newer.marshal()
	if err := td.Reload(RecordUser, "alice", func() ([]byte, error) { return b, nil }); err != nil {
		t.Fatal(err)
	}
	if got := td.user("alice").Failures(); got != 2 {
		t.Fatalf("failures = %d, want the incoming 2", got)
	}
}

// A pre-admin session on this HSM becomes an admin session when the
// activation made on another HSM arrives.
func TestReloadedActivationPromotesSessions(t *testing.T) {
	td := newTestDevice(t)
	ctx := t.Context()
	s := td.OpenSession()
	if err := td.Login(ctx, s, RoleAdmin, DefaultAdminName, DefaultPreAdminPIN); err != nil {
		t.Fatal(err)
	}
	u := td.user(DefaultAdminName).clone()
	u.Role, u.passwordSet = RoleAdmin, u.passwordSet+1
	b, _ := u.marshal()
	if err := td.Reload(RecordUser, DefaultAdminName, func() ([]byte, error) { return b, nil }); err != nil {
		t.Fatal(err)
	}
	if _, p, _ := td.whoami(s); p == nil || p.role != RoleAdmin {
		t.Fatalf("session principal after the activation arrived: %+v", p)
	}
}
