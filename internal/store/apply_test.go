package store

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestApplyLastWriterWins(t *testing.T) {
	ctx := t.Context()
	mk := newMK(t)
	const id = "key-1"
	at := func(wall int64, logical, node uint32) Version {
		return Version{Wall: wall, Logical: logical, Node: node}
	}
	put := func(v Version, data string) Sealed { return sealWith(t, mk, KindObject, id, v, false, []byte(data)) }
	del := func(v Version) Sealed { return sealWith(t, mk, KindObject, id, v, true, nil) }

	type step struct {
		rec         Sealed
		wantApplied bool
		wantData    string // "" means: Get gives ErrNotFound
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first copy applied", []step{{put(at(10, 0, 2), "a"), true, "a"}}},
		{"same version again ignored", []step{
			{put(at(10, 0, 2), "a"), true, "a"},
			{put(at(10, 0, 2), "a"), false, "a"},
		}},
		{"newer applied, older ignored", []step{
			{put(at(10, 0, 2), "a"), true, "a"},
			{put(at(20, 0, 2), "b"), true, "b"},
			{put(at(15, 0, 3), "c"), false, "b"},
		}},
		{"logical orders within a wall time", []step{
			{put(at(10, 1, 2), "a"), true, "a"},
			{put(at(10, 0, 3), "b"), false, "a"},
			{put(at(10, 2, 2), "c"), true, "c"},
		}},
		{"node breaks ties", []step{
			{put(at(10, 0, 2), "low"), true, "low"},
			{put(at(10, 0, 3), "high"), true, "high"},
			{put(at(10, 0, 2), "low"), false, "high"},
		}},
		{"tombstone wins over older put", []step{
			{put(at(10, 0, 2), "a"), true, "a"},
			{del(at(20, 0, 3)), true, ""},
			{put(at(15, 0, 2), "late"), false, ""},
		}},
		{"newer put resurrects", []step{
			{del(at(20, 0, 3)), true, ""},
			{put(at(30, 0, 2), "again"), true, "again"},
		}},
		{"older tombstone ignored", []step{
			{put(at(20, 0, 2), "a"), true, "a"},
			{del(at(10, 0, 3)), false, "a"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(t, 1, mk)
			for i, st := range tc.steps {
				applied, err := s.Apply(ctx, st.rec)
				if err != nil {
					t.Fatalf("step %d: Apply: %v", i, err)
				}
				if applied != st.wantApplied {
					t.Fatalf("step %d: applied = %v, want %v", i, applied, st.wantApplied)
				}
				r, err := s.Get(ctx, KindObject, id)
				switch {
				case st.wantData == "" && !errors.Is(err, ErrNotFound):
					t.Fatalf("step %d: Get = %+v, %v; want ErrNotFound", i, r, err)
				case st.wantData != "" && (err != nil || string(r.Data) != st.wantData):
					t.Fatalf("step %d: Get = %q, %v; want %q", i, r.Data, err, st.wantData)
				}
			}
		})
	}
}

func TestReplicateBetweenStores(t *testing.T) {
	ctx := t.Context()
	mk := newMK(t)
	a, _ := newTestStore(t, 1, mk)
	b, _ := newTestStore(t, 2, bytes.Clone(mk))

	va := mustPut(t, a, KindUser, "alice", []byte("hash-1"))
	if applied, err := b.Apply(ctx, mustExport(t, a, KindUser, "alice")); err != nil || !applied {
		t.Fatalf("Apply = %v, %v", applied, err)
	}
	if r := mustGet(t, b, KindUser, "alice", []byte("hash-1")); r.Version != va {
		t.Fatalf("replica version %v, want %v", r.Version, va)
	}
	// b's own next write orders after what it observed from a.
	vb := mustPut(t, b, KindUser, "alice", []byte("hash-2"))
	if vb.Compare(va) <= 0 {
		t.Fatalf("b's write %v not after a's %v", vb, va)
	}
	// a's stale copy does not overwrite b's newer one, and the reverse applies.
	if applied, err := b.Apply(ctx, mustExport(t, a, KindUser, "alice")); err != nil || applied {
		t.Fatalf("stale Apply = %v, %v", applied, err)
	}
	if applied, err := a.Apply(ctx, mustExport(t, b, KindUser, "alice")); err != nil || !applied {
		t.Fatalf("Apply of newer = %v, %v", applied, err)
	}
	mustGet(t, a, KindUser, "alice", []byte("hash-2"))
	// A deletion travels as a tombstone.
	if _, err := a.Delete(ctx, KindUser, "alice"); err != nil {
		t.Fatal(err)
	}
	if applied, err := b.Apply(ctx, mustExport(t, a, KindUser, "alice")); err != nil || !applied {
		t.Fatalf("Apply of tombstone = %v, %v", applied, err)
	}
	if _, err := b.Get(ctx, KindUser, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after replicated delete: %v", err)
	}
	// Both now hold identical metadata.
	if ma, mb := metadata(t, a), metadata(t, b); !slices.EqualFunc(ma, mb, sealedEqual) {
		t.Fatalf("metadata differs:\n a %v\n b %v", ma, mb)
	}
}

func TestApplyRefused(t *testing.T) {
	ctx := t.Context()
	mk := newMK(t)
	s, _ := newTestStore(t, 1, mk)
	v := Version{Wall: time.Now().UnixNano(), Node: 2}
	good := sealWith(t, mk, KindObject, "k", v, false, []byte("payload"))
	edit := func(f func(*Sealed)) Sealed {
		r := good
		r.Box = bytes.Clone(good.Box)
		f(&r)
		return r
	}
	tests := []struct {
		name    string
		rec     Sealed
		wantBox bool // ErrBadBox, rather than a malformed-record error
	}{
		{"sealed under another MK", sealWith(t, newMK(t), KindObject, "k", v, false, []byte("payload")), true},
		{"other id", edit(func(r *Sealed) { r.ID = "k2" }), true},
		{"other kind", edit(func(r *Sealed) { r.Kind = KindUser }), true},
		{"other version", edit(func(r *Sealed) { r.Version.Wall++ }), true},
		{"other node", edit(func(r *Sealed) { r.Version.Node = 3 }), true},
		{"marked tombstone", edit(func(r *Sealed) { r.Tombstone = true }), true},
		{"box edited", edit(func(r *Sealed) { r.Box[len(r.Box)/2] ^= 1 }), true},
		{"tombstone with payload", sealWith(t, mk, KindObject, "k", v, true, []byte("x")), true},
		{"short box", edit(func(r *Sealed) { r.Box = r.Box[:boxOverhead-1] }), false},
		{"zero version", edit(func(r *Sealed) { r.Version = Version{} }), false},
		{"bad kind", edit(func(r *Sealed) { r.Kind = 9 }), false},
		{"empty id", edit(func(r *Sealed) { r.ID = "" }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			applied, err := s.Apply(ctx, tc.rec)
			if err == nil || applied {
				t.Fatalf("Apply = %v, %v; want refusal", applied, err)
			}
			if errors.Is(err, ErrBadBox) != tc.wantBox {
				t.Fatalf("err = %v; ErrBadBox want %v", err, tc.wantBox)
			}
			if _, err := s.Get(ctx, tc.rec.Kind, tc.rec.ID); !errors.Is(err, ErrNotFound) && tc.rec.Kind.Valid() && tc.rec.ID != "" {
				t.Fatalf("refused record readable: %v", err)
			}
		})
	}
	if n := len(metadata(t, s)); n != 0 {
		t.Fatalf("%d records stored after refusals", n)
	}
	if applied, err := s.Apply(ctx, good); err != nil || !applied {
		t.Fatalf("untouched record: Apply = %v, %v", applied, err)
	}
}

func TestApplyMovesClock(t *testing.T) {
	mk := newMK(t)
	s, _ := newTestStore(t, 1, mk)
	future := Version{Wall: time.Now().Add(time.Hour).UnixNano(), Logical: 7, Node: 9}
	if _, err := s.Apply(t.Context(), sealWith(t, mk, KindSetting, "x", future, false, nil)); err != nil {
		t.Fatal(err)
	}
	if v := mustPut(t, s, KindSetting, "y", nil); v.Compare(future) <= 0 {
		t.Fatalf("local write %v not after observed %v", v, future)
	}
	// Overwriting the record itself also orders after it.
	if v := mustPut(t, s, KindSetting, "x", []byte("mine")); v.Compare(future) <= 0 {
		t.Fatalf("overwrite %v not after %v", v, future)
	}
}

// metadata lists every record's metadata via Versions.
func metadata(t *testing.T, s *Store) []Sealed {
	t.Helper()
	var out []Sealed
	err := s.Versions(t.Context(), func(k Kind, id string, v Version, tomb bool) error {
		out = append(out, Sealed{Kind: k, ID: id, Version: v, Tombstone: tomb})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sealedEqual(a, b Sealed) bool {
	return a.Kind == b.Kind && a.ID == b.ID && a.Version == b.Version && a.Tombstone == b.Tombstone && bytes.Equal(a.Box, b.Box)
}

func TestVersionsAndPurge(t *testing.T) {
	ctx := t.Context()
	s, _ := newTestStore(t, 1, newMK(t))
	vo := mustPut(t, s, KindObject, "o", []byte("o"))
	vu := mustPut(t, s, KindUser, "u", []byte("u"))
	mustPut(t, s, KindSetting, "gone", []byte("s"))
	vd, err := s.Delete(ctx, KindSetting, "gone")
	if err != nil {
		t.Fatal(err)
	}
	want := []Sealed{
		{Kind: KindObject, ID: "o", Version: vo},
		{Kind: KindUser, ID: "u", Version: vu},
		{Kind: KindSetting, ID: "gone", Version: vd, Tombstone: true},
	}
	if got := metadata(t, s); !slices.EqualFunc(got, want, sealedEqual) {
		t.Fatalf("Versions = %+v, want %+v", got, want)
	}

	tests := []struct {
		name    string
		kind    Kind
		id      string
		v       Version
		wantErr error
	}{
		{"wrong version", KindSetting, "gone", Version{Wall: vd.Wall - 1, Node: 1}, ErrStale},
		{"live record", KindObject, "o", vo, ErrStale},
		{"right version", KindSetting, "gone", vd, nil},
		{"already purged", KindSetting, "gone", vd, nil},
		{"never existed", KindUser, "nobody", vd, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PurgeTombstone(ctx, tc.kind, tc.id, tc.v); !errors.Is(err, tc.wantErr) {
				t.Fatalf("PurgeTombstone err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if got := metadata(t, s); !slices.EqualFunc(got, want[:2], sealedEqual) {
		t.Fatalf("after purge Versions = %+v, want %+v", got, want[:2])
	}
	mustGet(t, s, KindObject, "o", []byte("o"))
}
