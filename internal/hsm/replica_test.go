package hsm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// TestAdmitObjectRules: what a replica may not change in the destination's
// copy of a key, each refused before the store is written.
func TestAdmitObjectRules(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	withCU(t, td, admin, "bob")
	ctx := t.Context()
	k := genAES(t, td, alice, "k", Bool(ck.CKA_EXTRACTABLE, false))
	other := genAES(t, td, alice, "other")
	td.mu.RLock()
	cur, otherObj := td.objects[k], td.objects[other]
	td.mu.RUnlock()

	for _, c := range []struct {
		name string
		edit func(o *Object) // a replica of k as another cluster might hold it
		id   string          // the record's id; default k's
		want string
		kind error
	}{
		{name: "same record", edit: func(*Object) {}},
		{name: "a label changed", edit: func(o *Object) { o.setAttr(ck.CKA_LABEL, []byte("renamed")) }},
		{name: "record of another id", edit: func(*Object) {}, id: other.String(), want: "holds object", kind: ErrReplicaRefused},
		{name: "sensitive back to false", edit: func(o *Object) { o.setBool(ck.CKA_SENSITIVE, false) }, want: "CKA_SENSITIVE is true there", kind: ErrReplicaRefused},
		{name: "extractable back to true", edit: func(o *Object) { o.setBool(ck.CKA_EXTRACTABLE, true) }, want: "CKA_EXTRACTABLE is false there", kind: ErrReplicaRefused},
		{name: "trusted", edit: func(o *Object) { o.setBool(ck.CKA_TRUSTED, true) }, want: "CKA_TRUSTED differs", kind: ErrReplicaRefused},
		{name: "read-only attribute", edit: func(o *Object) { o.setBool(ck.CKA_DESTROYABLE, false) }, want: "cannot change after creation", kind: ErrReplicaRefused},
		{name: "other key material", edit: func(o *Object) { o.key = otherObj.key }, want: "it is another key", kind: ErrReplicaRefused},
		{name: "another owner", edit: func(o *Object) { o.owner = "bob" }, want: "belongs to bob", kind: ErrNotOwner},
		{name: "shared with a user who is not a crypto user", edit: func(o *Object) { o.shared = []string{"admin"} }, want: "crypto user admin", kind: ErrReplicaRefused},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := cur.clone()
			c.edit(o)
			data, err := o.marshal()
			if err != nil {
				t.Fatal(err)
			}
			id := c.id
			if id == "" {
				id = k.String()
			}
			applied := false
			_, _, err = td.AdmitObject(ctx, alice, id, data, func(context.Context) (bool, error) { applied = true; return true, nil })
			if c.want == "" {
				if err != nil || !applied {
					t.Fatalf("AdmitObject = %v (applied %v), want it taken", err, applied)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.kind) {
				t.Fatalf("AdmitObject = %v, want %v saying %q", err, c.kind, c.want)
			}
			if applied {
				t.Fatal("the store was written for a refused replica")
			}
		})
	}

	t.Run("a key that is not modifiable changes in nothing", func(t *testing.T) {
		fixed := genAES(t, td, alice, "fixed", Bool(ck.CKA_MODIFIABLE, false))
		td.mu.RLock()
		o := td.objects[fixed].clone()
		td.mu.RUnlock()
		o.setAttr(ck.CKA_LABEL, []byte("renamed"))
		data, err := o.marshal()
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = td.AdmitObject(ctx, alice, fixed.String(), data, func(context.Context) (bool, error) { return true, nil })
		if err == nil || !strings.Contains(err.Error(), "CKA_MODIFIABLE is false there") {
			t.Fatalf("AdmitObject = %v", err)
		}
	})
}

// TestAdmitUserQuorum: a replicated user is a user change on the
// destination: with a user-management quorum above 1 it needs the
// approvals a user creation needs there, and the token is spent.
func TestAdmitUserQuorum(t *testing.T) {
	ctx := t.Context()
	src := newTestDevice(t)
	srcAdmin := activateDevice(t, src)
	noErr(t, src.CreateUser(ctx, srcAdmin, "zoe", RoleCryptoUser, cuPW, Approvals{}))
	data, err := src.user("zoe").marshal()
	noErr(t, err)

	td, ap := quorumCluster(t, Config{})
	admin, a1 := ap[0], ap[1]
	noErr(t, td.SetQuorumValue(ctx, admin.sid, QuorumUserManagement, 2, false, Approvals{}))
	applied := false
	apply := func(context.Context) (bool, error) { applied = true; return true, nil }
	_, err = td.AdmitUser(ctx, admin.sid, "zoe", data, Approvals{}, apply)
	wantRefusal(t, err, ErrQuorumRequired)
	if applied {
		t.Fatal("a user replicated without the quorum")
	}
	tok, err := td.QuorumToken(ctx, admin.sid, QuorumUserManagement)
	noErr(t, err)
	_, err = td.AdmitUser(ctx, admin.sid, "zoe", data, Approvals{tok.ID, []Approval{admin.approve(t, tok), a1.approve(t, tok)}}, apply)
	noErr(t, err)
	if !applied {
		t.Fatal("not applied with the quorum")
	}
	if slices.Contains(td.tokenIDs(t, admin.sid), tok.ID) {
		t.Error("the token was not spent")
	}
	_, err = td.AdmitUser(ctx, admin.sid, "other", data, Approvals{}, apply)
	wantRefusal(t, err, ErrReplicaRefused)
}

// TestAdmitUserKeepsDeletedUsersKeys: a replicated user does not take the
// name a force-deleted user's keys still carry, as a new user does not.
func TestAdmitUserKeepsDeletedUsersKeys(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	zoe := withCU(t, td, admin, "zoe")
	genAES(t, td, zoe, "zoes")
	data, err := td.user("zoe").marshal()
	noErr(t, err)
	noErr(t, td.DeleteUser(ctx, admin, "zoe", true, Approvals{}))
	_, err = td.AdmitUser(ctx, admin, "zoe", data, Approvals{}, func(context.Context) (bool, error) { return true, nil })
	if !errors.Is(err, ErrUserExists) || !strings.Contains(err.Error(), "keys of a deleted user") {
		t.Fatalf("AdmitUser = %v", err)
	}
}
