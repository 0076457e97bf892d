package hsm

import (
	"cmp"
	"context"
	"crypto/elliptic"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

func TestReplicationLinks(t *testing.T) {
	td, admin := activated(t)
	cu := withCU(t, td, admin, "alice")
	ctx := t.Context()
	ca := makeCert(t, "clone CA", ecKey(t, elliptic.P256()), nil, certOpts{})
	leaf := makeCert(t, "not a CA", ecKey(t, elliptic.P256()), ca, certOpts{leaf: true})
	out := ReplicationLink{Direction: LinkOutbound, ClusterID: "cluster-b", Address: "127.0.0.12:2223", Users: true}

	for _, tc := range []struct {
		name string
		sid  SessionID
		l    ReplicationLink
		der  []byte
		want *Kind
	}{
		{"crypto user", cu, out, ca.cert.Raw, ErrRoleNotPermitted},
		{"not a CA", admin, out, leaf.cert.Raw, ErrTrustAnchorInvalid},
		{"outbound without address", admin, ReplicationLink{Direction: LinkOutbound, ClusterID: "cluster-b"}, ca.cert.Raw, ErrArgumentsBad},
		{"inbound with address", admin, ReplicationLink{Direction: LinkInbound, ClusterID: "cluster-b", Address: "127.0.0.1:1"}, ca.cert.Raw, ErrArgumentsBad},
		{"bad cluster id", admin, ReplicationLink{Direction: LinkInbound, ClusterID: "-x/y"}, ca.cert.Raw, ErrArgumentsBad},
		{"no direction", admin, ReplicationLink{ClusterID: "cluster-b"}, ca.cert.Raw, ErrArgumentsBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := td.CreateReplicationLink(ctx, tc.sid, tc.l, tc.der, Approvals{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if got := td.ReplicationLinks(); len(got) != 0 {
		t.Fatalf("refused creations left links: %v", got)
	}

	if err := td.CreateReplicationLink(ctx, admin, out, ca.cert.Raw, Approvals{}); err != nil {
		t.Fatal(err)
	}
	in := ReplicationLink{Direction: LinkInbound, ClusterID: "cluster-c"}
	if err := td.CreateReplicationLink(ctx, admin, in, ca.cert.Raw, Approvals{}); err != nil {
		t.Fatal(err)
	}
	if err := td.CreateReplicationLink(ctx, admin, out, ca.cert.Raw, Approvals{}); !errors.Is(err, ErrArgumentsBad) {
		t.Fatalf("second link with the same cluster: %v", err)
	}

	// The record survives a restart, as any other setting.
	re := td.reopen(t)
	got := re.ReplicationLinks()
	if len(got) != 2 || got[0].Key() != "outbound cluster-b" || got[0].Address != out.Address || !got[0].Users ||
		got[1].Key() != "inbound cluster-c" || got[1].Users || !got[1].Anchor.Equal(ca.cert) || got[0].Created.IsZero() {
		t.Fatalf("after reopen: %+v", got)
	}

	if err := td.DeleteReplicationLink(ctx, cu, LinkOutbound, "cluster-b", Approvals{}); !errors.Is(err, ErrRoleNotPermitted) {
		t.Fatalf("crypto user deleted a link: %v", err)
	}
	if err := td.DeleteReplicationLink(ctx, admin, LinkOutbound, "cluster-b", Approvals{}); err != nil {
		t.Fatal(err)
	}
	if err := td.DeleteReplicationLink(ctx, admin, LinkOutbound, "cluster-b", Approvals{}); !errors.Is(err, ErrArgumentsBad) {
		t.Fatalf("deleting a missing link: %v", err)
	}
	if got := td.ReplicationLinks(); len(got) != 1 || got[0].Key() != "inbound cluster-c" {
		t.Fatalf("after delete: %+v", got)
	}
}

func FuzzUnmarshalLinks(f *testing.F) {
	f.Add(marshalLinks(nil))
	f.Add([]byte{linksFormat, 1, 1, 1, 'a', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		links, err := unmarshalLinks(b)
		if err != nil {
			return
		}
		again, err := unmarshalLinks(marshalLinks(links))
		if err != nil || len(again) != len(links) {
			t.Fatalf("round trip: %v, %d links of %d", err, len(again), len(links))
		}
	})
}

// linkAdmit admits one record as the inbound link from cluster-a pushes
// it (users: the link replicates users) and reports whether apply ran.
func linkAdmit(t testing.TB, td *testDevice, users bool, kind RecordKind, id string, data []byte) (bool, error) {
	t.Helper()
	l := ReplicationLink{Direction: LinkInbound, ClusterID: "cluster-a", Users: users}
	applied := false
	_, err := td.AdmitLinked(t.Context(), l, kind, id, data, func(context.Context) (bool, error) { applied = true; return true, nil })
	if err != nil && applied {
		t.Fatalf("the store was written for a refused record: %v", err)
	}
	return applied, err
}

// TestAdmitLinkedRecords: what a link admits besides objects: users only
// under their own name, deletions, never settings.
func TestAdmitLinkedRecords(t *testing.T) {
	td, admin := activated(t)
	withCU(t, td, admin, "alice")
	u, err := td.user("alice").marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kind RecordKind
		id   string
		data []byte
		ok   bool
	}{
		{"user under its name", RecordUser, "alice", u, true},
		{"user under another name", RecordUser, "admin", u, false},
		{"setting", RecordSetting, clusterSettingsID, defaultClusterSettings().marshal(), false},
		{"setting deleted", RecordSetting, linksSettingsID, nil, false},
		{"object with a bad id", RecordObject, "not-an-id", nil, false},
		{"object deleted", RecordObject, ObjectID(7).String(), nil, true},
		{"object that does not parse", RecordObject, ObjectID(7).String(), []byte{1, 2, 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applied, err := linkAdmit(t, td, true, tc.kind, tc.id, tc.data)
			if (err == nil) != tc.ok || applied != tc.ok {
				t.Fatalf("got %v (applied %v), want ok=%v", err, applied, tc.ok)
			}
		})
	}
}

// TestAdmitLinkedObjectRules: a record a link pushes meets the rule a
// one-shot replica meets (TestAdmitObjectRules), with no session: each
// refusal of key replicate holds for a link's source as well.
func TestAdmitLinkedObjectRules(t *testing.T) {
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	withCU(t, td, admin, "bob")
	ctx := t.Context()
	k := genAES(t, td, alice, "k", Bool(ck.CKA_EXTRACTABLE, false), Bool(ck.CKA_WRAP_WITH_TRUSTED, true))
	other := genAES(t, td, alice, "other")
	fixed := genAES(t, td, alice, "fixed", Bool(ck.CKA_MODIFIABLE, false))
	trusted := genAES(t, td, alice, "trusted")
	noErr(t, td.SetAttributes(ctx, admin, trusted, Template{Bool(ck.CKA_TRUSTED, true)}))
	kept := genAES(t, td, alice, "kept", Bool(ck.CKA_DESTROYABLE, false))
	plain := genAES(t, td, alice, "plain")
	td.mu.RLock()
	objs := map[ObjectID]*Object{}
	for _, id := range []ObjectID{k, other, fixed, trusted} {
		objs[id] = td.objects[id].clone()
	}
	td.mu.RUnlock()
	fresh := ObjectID(0x7e57_0000_0000_0001)

	for _, c := range []struct {
		name string
		of   ObjectID        // the destination's object the record copies; default k
		edit func(o *Object) // the record as the source pushes it
		id   string          // the record's id; default the object's
		want string          // "" if admitted
		kind error
	}{
		{name: "same record", edit: func(*Object) {}},
		{name: "a label changed", edit: func(o *Object) { o.setAttr(ck.CKA_LABEL, []byte("renamed")) }},
		{name: "record of another id", edit: func(*Object) {}, id: other.String(), want: "holds object", kind: ErrReplicaRefused},
		{name: "record id not canonical", edit: func(*Object) {}, id: strings.ToUpper(k.String()), want: "is not an object id", kind: ErrReplicaRefused},
		{name: "sensitive back to false", edit: func(o *Object) { o.setBool(ck.CKA_SENSITIVE, false) }, want: "CKA_SENSITIVE is true there", kind: ErrReplicaRefused},
		{name: "extractable back to true", edit: func(o *Object) { o.setBool(ck.CKA_EXTRACTABLE, true) }, want: "CKA_EXTRACTABLE is false there", kind: ErrReplicaRefused},
		{name: "wrap-with-trusted back to false", edit: func(o *Object) { o.setBool(ck.CKA_WRAP_WITH_TRUSTED, false) }, want: "CKA_WRAP_WITH_TRUSTED is true there", kind: ErrReplicaRefused},
		{name: "trusted set", edit: func(o *Object) { o.setBool(ck.CKA_TRUSTED, true) }, want: "CKA_TRUSTED differs", kind: ErrReplicaRefused},
		{name: "trusted cleared", of: trusted, edit: func(o *Object) { o.setBool(ck.CKA_TRUSTED, false) }, want: "CKA_TRUSTED differs", kind: ErrReplicaRefused},
		{name: "a new key trusted", of: other, id: fresh.String(), edit: func(o *Object) { o.id = fresh; o.setBool(ck.CKA_TRUSTED, true) },
			want: "only an admin of the destination marks a key trusted", kind: ErrReplicaRefused},
		{name: "read-only attribute", edit: func(o *Object) { o.setBool(ck.CKA_DESTROYABLE, false) }, want: "cannot change after creation", kind: ErrReplicaRefused},
		{name: "key not modifiable", of: fixed, edit: func(o *Object) { o.setAttr(ck.CKA_LABEL, []byte("renamed")) }, want: "CKA_MODIFIABLE is false there", kind: ErrReplicaRefused},
		{name: "other key material", edit: func(o *Object) { o.key = objs[other].key }, want: "it is another key", kind: ErrReplicaRefused},
		{name: "another owner", edit: func(o *Object) { o.owner = "bob" }, want: "belongs to alice on the destination", kind: ErrNotOwner},
		{name: "shared with a user who is not a crypto user", edit: func(o *Object) { o.shared = []string{"admin"} }, want: "crypto user admin", kind: ErrReplicaRefused},
		{name: "owner missing", of: other, id: fresh.String(), edit: func(o *Object) { o.id, o.owner = fresh, "carol" }, want: "crypto user carol", kind: ErrReplicaRefused},
	} {
		t.Run(c.name, func(t *testing.T) {
			of := cmp.Or(c.of, k)
			o := objs[of].clone()
			c.edit(o)
			data, err := o.marshal()
			noErr(t, err)
			applied, err := linkAdmit(t, td, false, RecordObject, cmp.Or(c.id, of.String()), data)
			if c.want == "" {
				if err != nil || !applied {
					t.Fatalf("AdmitLinked = %v (applied %v), want it taken", err, applied)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.kind) {
				t.Fatalf("AdmitLinked = %v, want %v saying %q", err, c.kind, c.want)
			}
		})
	}

	// A link replicates deletions, but only those the owner could make here.
	for _, c := range []struct {
		name string
		id   ObjectID
		want string
	}{
		{"a trusted key", trusted, "the object is trusted"},
		{"a key with CKA_DESTROYABLE false", kept, "CKA_DESTROYABLE is false"},
		{"a key the owner may destroy", plain, ""},
		{"a key this cluster lacks", fresh, ""},
	} {
		t.Run("deletion of "+c.name, func(t *testing.T) {
			applied, err := linkAdmit(t, td, false, RecordObject, c.id.String(), nil)
			if c.want == "" {
				if err != nil || !applied {
					t.Fatalf("AdmitLinked = %v (applied %v), want it taken", err, applied)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrReplicaRefused) {
				t.Fatalf("AdmitLinked = %v, want a refusal saying %q", err, c.want)
			}
		})
	}
}

// TestAdmitLinkedObjectCap: the cap on objects holds for what a link
// pushes, as for keys made here and one-shot replicas.
func TestAdmitLinkedObjectCap(t *testing.T) {
	td, admin := activate(t, newDeviceWith(t, Config{MaxObjects: 1}))
	alice := withCU(t, td, admin, "alice")
	k := genAES(t, td, alice, "k")
	td.mu.RLock()
	o := td.objects[k].clone()
	td.mu.RUnlock()
	o.id = ObjectID(0x7e57_0000_0000_0002)
	data, err := o.marshal()
	noErr(t, err)
	_, err = linkAdmit(t, td, false, RecordObject, o.id.String(), data)
	wantRefusal(t, err, ErrDeviceMemory)
}

// TestAdmitLinkedUserRules: user records through a link (created with
// --users) meet user replicate's rules: an existing user keeps its role,
// the pre-admin never crosses, a new user does not take a deleted user's
// keys; a link without users takes none; a deletion meets a local
// deletion's rules. A new admin is what --users accepts.
func TestAdmitLinkedUserRules(t *testing.T) {
	ctx := t.Context()
	td, admin := activated(t)
	alice := withCU(t, td, admin, "alice")
	zoe := withCU(t, td, admin, "zoe")
	genAES(t, td, zoe, "zoes")
	genAES(t, td, alice, "alices")
	zoeRec, err := td.user("zoe").marshal()
	noErr(t, err)
	noErr(t, td.DeleteUser(ctx, admin, "zoe", true, Approvals{}))
	withCU(t, td, admin, "carl")

	record := func(name string, edit func(u *User)) []byte {
		t.Helper()
		u := *td.user(name)
		edit(&u)
		b, err := u.marshal()
		noErr(t, err)
		return b
	}
	src := newTestDevice(t)
	srcAdmin := activateDevice(t, src)
	noErr(t, src.CreateUser(ctx, srcAdmin, "root2", RoleAdmin, cuPW, Approvals{}))
	newAdmin, err := src.user("root2").marshal()
	noErr(t, err)

	for _, c := range []struct {
		name  string
		users bool
		id    string
		data  []byte
		want  string // "" if admitted
		kind  error
	}{
		{"a crypto user made admin", true, "alice", record("alice", func(u *User) { u.Role = RoleAdmin }), "has role crypto-user on the destination", ErrReplicaRefused},
		{"the admin made a crypto user", true, "admin", record("admin", func(u *User) { u.Role = RoleCryptoUser }), "has role admin on the destination", ErrReplicaRefused},
		{"a pre-admin", true, "newpre", record("alice", func(u *User) { u.Name, u.Role = "newpre", rolePreAdmin }), "is not replicated", ErrReplicaRefused},
		{"a new user with a deleted user's keys", true, "zoe", zoeRec, "keys of a deleted user", ErrUserExists},
		{"a user over a link without users", false, "alice", record("alice", func(*User) {}), "users are not replicated", ErrReplicaRefused},
		{"deletion of a user who owns keys here", true, "alice", nil, "owns 1 token keys", ErrUserOwnsKeys},
		{"deletion of the admin", true, "admin", nil, "admins would remain", ErrLastAdmins},
		{"the same user", true, "alice", record("alice", func(*User) {}), "", nil},
		{"a new admin, with users", true, "root2", newAdmin, "", nil},
		{"deletion of a user who owns no keys", true, "carl", nil, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			applied, err := linkAdmit(t, td, c.users, RecordUser, c.id, c.data)
			if c.want == "" {
				if err != nil || !applied {
					t.Fatalf("AdmitLinked = %v (applied %v), want it taken", err, applied)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.kind) {
				t.Fatalf("AdmitLinked = %v, want %v saying %q", err, c.kind, c.want)
			}
		})
	}
}
