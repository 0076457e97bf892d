package hsm

import (
	"bytes"
	"crypto/elliptic"
	"errors"
	"slices"
	"testing"

	"github.com/coffer-hsm/coffer/internal/ck"
)

// twoHSMs is two devices with the same crypto user, whose records the test
// carries between them as replication would.
type twoHSMs struct {
	a, b           *testDevice
	sa, sb, adminA SessionID
}

func newTwoHSMs(t *testing.T) *twoHSMs {
	t.Helper()
	a, adminA := activated(t)
	b, adminB := activated(t)
	return &twoHSMs{a: a, b: b, adminA: adminA, sa: withCU(t, a, adminA, "alice"), sb: withCU(t, b, adminB, "alice")}
}

// record is the stored record of object id, as a peer would export it now.
func record(t *testing.T, td *testDevice, id ObjectID) []byte {
	t.Helper()
	data, ok := td.store.recs[RecordObject][id.String()]
	if !ok {
		t.Fatalf("object %v: no record", id)
	}
	return slices.Clone(data)
}

// deliver applies a record of object id to a device, as a peer's push does:
// store it, reload it, settle it.
func deliverObject(t *testing.T, to *testDevice, id ObjectID, data []byte) {
	t.Helper()
	if err := to.store.Put(t.Context(), RecordObject, id.String(), data); err != nil {
		t.Fatal(err)
	}
	if err := to.Reload(RecordObject, id.String(), func() ([]byte, error) { return slices.Clone(data), nil }); err != nil {
		t.Fatal(err)
	}
	if err := to.SettleCreation(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

// ship delivers object id's current record from one device to the other.
func ship(t *testing.T, from, to *testDevice, id ObjectID) {
	t.Helper()
	deliverObject(t, to, id, record(t, from, id))
}

// sendCreation is one send of a key generation with token and attempt, as
// the node runs it: generate, then settle.
func sendCreation(t *testing.T, td *testDevice, s SessionID, token []byte, attempt uint32) ObjectID {
	t.Helper()
	ctx := WithCreation(t.Context(), Creation{Token: token, Attempt: attempt})
	id, err := td.GenerateKey(ctx, s, Mechanism{Type: ck.CKM_AES_KEY_GEN}, aesTemplate("k", 32))
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if err := td.SettleCreation(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

func secretOf(t *testing.T, td *testDevice, s SessionID, id ObjectID) []byte {
	t.Helper()
	b, err := td.ExportKey(t.Context(), s, id)
	if err != nil {
		t.Fatalf("export %v: %v", id, err)
	}
	return b
}

// holds reports the token objects td lists for s.
func holds(t *testing.T, td *testDevice, s SessionID) []ObjectID {
	t.Helper()
	ids, err := td.FindObjects(s, Template{Bool(ck.CKA_TOKEN, true)})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

type hsmSession struct {
	d *testDevice
	s SessionID
}

func (h *twoHSMs) both() []hsmSession { return []hsmSession{{h.a, h.sa}, {h.b, h.sb}} }

// A creation resent to another HSM never leaves a second key, and the key
// the client was told about (the latest send's) is the one every HSM keeps,
// with its own key material, whatever order the records arrive in.
func TestResentCreation(t *testing.T) {
	token := []byte("0123456789abcdef-token")
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *twoHSMs) ObjectID // returns the acknowledged key
	}{
		{"first send's key reached the other HSM before the resend", func(t *testing.T, h *twoHSMs) ObjectID {
			x1 := sendCreation(t, h.a, h.sa, token, 1) // answer lost
			ship(t, h.a, h.b, x1)
			x2 := sendCreation(t, h.b, h.sb, token, 2)
			ship(t, h.b, h.a, x2)
			return x2
		}},
		{"first send's key arrives after the resend", func(t *testing.T, h *twoHSMs) ObjectID {
			x1 := sendCreation(t, h.a, h.sa, token, 1) // stored on A, which then dies
			x2 := sendCreation(t, h.b, h.sb, token, 2) // acknowledged
			ship(t, h.a, h.b, x1)                      // A comes back
			ship(t, h.b, h.a, x2)
			return x2
		}},
		{"a late first send on the HSM that has the resend's key", func(t *testing.T, h *twoHSMs) ObjectID {
			x2 := sendCreation(t, h.b, h.sb, token, 2)
			ship(t, h.b, h.a, x2)
			x1 := sendCreation(t, h.a, h.sa, token, 1) // A was frozen with send 1
			if _, ok := h.a.store.recs[RecordObject][x1.String()]; ok {
				t.Fatal("the late first send's key was kept beside the resend's")
			}
			return x2
		}},
		{"three sends on two HSMs", func(t *testing.T, h *twoHSMs) ObjectID {
			x1 := sendCreation(t, h.a, h.sa, token, 1)
			stale := record(t, h.a, x1)
			x2 := sendCreation(t, h.b, h.sb, token, 2)
			x3 := sendCreation(t, h.a, h.sa, token, 3)
			ship(t, h.b, h.a, x2)
			ship(t, h.a, h.b, x3)
			deliverObject(t, h.b, x1, stale) // a late copy, e.g. from a third HSM
			deliverObject(t, h.a, x1, stale)
			return x3
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTwoHSMs(t)
			acked := tc.run(t, h)
			material := secretOf(t, h.b, h.sb, acked)
			for _, hs := range h.both() {
				if ids := holds(t, hs.d, hs.s); !slices.Equal(ids, []ObjectID{acked}) {
					t.Fatalf("holds %v, want only the acknowledged %v", ids, acked)
				}
				if !bytes.Equal(secretOf(t, hs.d, hs.s, acked), material) {
					t.Fatal("the acknowledged key's material differs between HSMs")
				}
				if n := len(hs.d.store.recs[RecordObject]); n != 1 {
					t.Fatalf("%d object records stored, want 1", n)
				}
			}
		})
	}
	t.Run("a key pair loses whole, and half a pair too", func(t *testing.T) {
		h := newTwoHSMs(t)
		pair := func(td *testDevice, s SessionID, attempt uint32) (pub, priv ObjectID) {
			pub, priv, err := td.GenerateKeyPair(WithCreation(t.Context(), Creation{Token: token, Attempt: attempt}), s,
				Mechanism{Type: ck.CKM_EC_KEY_PAIR_GEN},
				Template{Bool(ck.CKA_TOKEN, true), Bytes(ck.CKA_EC_PARAMS, curveParams(elliptic.P256()))},
				Template{Bool(ck.CKA_TOKEN, true)})
			if err != nil {
				t.Fatal(err)
			}
			if err := td.SettleCreation(t.Context(), pub); err != nil {
				t.Fatal(err)
			}
			return pub, priv
		}
		pub1, priv1 := pair(h.a, h.sa, 1)
		pub1Rec, priv1Rec := record(t, h.a, pub1), record(t, h.a, priv1)
		pub2, priv2 := pair(h.b, h.sb, 2)
		deliverObject(t, h.b, priv1, priv1Rec) // half of the first pair arrives
		ship(t, h.b, h.a, priv2)               // half of the second
		deliverObject(t, h.b, pub1, pub1Rec)
		ship(t, h.b, h.a, pub2)
		want := []ObjectID{pub2, priv2}
		slices.Sort(want)
		for _, hs := range h.both() {
			if ids := holds(t, hs.d, hs.s); !slices.Equal(ids, want) {
				t.Fatalf("holds %v, want the second pair %v", ids, want)
			}
		}
	})
	t.Run("another user's creation with the same token is untouched", func(t *testing.T) {
		h := newTwoHSMs(t)
		bob := withCU(t, h.a, h.adminA, "bob")
		mine := sendCreation(t, h.a, h.sa, token, 1)
		theirs := sendCreation(t, h.a, bob, token, 2)
		if ids := holds(t, h.a, h.sa); !slices.Equal(ids, []ObjectID{mine}) {
			t.Fatalf("alice holds %v, want [%v]", ids, mine)
		}
		if ids := holds(t, h.a, bob); !slices.Equal(ids, []ObjectID{theirs}) {
			t.Fatalf("bob holds %v, want [%v]", ids, theirs)
		}
	})
	t.Run("bad tokens and attempts are refused", func(t *testing.T) {
		for _, c := range []Creation{{Token: []byte("short"), Attempt: 1}, {Token: token, Attempt: 0}, {Token: token, Attempt: MaxCreationAttempts + 1}} {
			if err := c.Validate(); !errors.Is(err, ErrArgumentsBad) {
				t.Errorf("%+v: %v, want ErrArgumentsBad", c, err)
			}
		}
	})
}
