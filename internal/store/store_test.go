package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	mk := newMK(t)
	s, n := newTestStore(t, 1, mk)
	ctx := t.Context()

	tests := []struct {
		name string
		kind Kind
		id   string
		data []byte
	}{
		{"object", KindObject, "obj-1", []byte("masked key bytes")},
		{"user", KindUser, "alice", []byte{0, 1, 2, 255}},
		{"setting", KindSetting, "cluster.name", []byte("prod")},
		{"empty payload", KindObject, "empty", nil},
		{"max payload", KindObject, "big", bytes.Repeat([]byte{0xA5}, MaxDataLen)},
		{"max id", KindUser, strings.Repeat("u", MaxIDLen), []byte("x")},
		{"binary id", KindSetting, "\x00\xff/..", []byte("y")},
	}
	versions := map[string]Version{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustPut(t, s, tc.kind, tc.id, tc.data)
			if v.IsZero() || v.Node != 1 {
				t.Fatalf("Put version = %v", v)
			}
			r := mustGet(t, s, tc.kind, tc.id, tc.data)
			if r.Version != v {
				t.Fatalf("Get version = %v, Put returned %v", r.Version, v)
			}
			versions[tc.name] = v
		})
	}

	t.Run("overwrite gets a newer version", func(t *testing.T) {
		v1 := mustPut(t, s, KindObject, "obj-1", []byte("v1"))
		v2 := mustPut(t, s, KindObject, "obj-1", []byte("v2"))
		if v2.Compare(v1) <= 0 {
			t.Fatalf("second Put version %v not after %v", v2, v1)
		}
		mustGet(t, s, KindObject, "obj-1", []byte("v2"))
	})

	t.Run("kinds are separate", func(t *testing.T) {
		if _, err := s.Get(ctx, KindUser, "obj-1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(user, obj-1) err = %v, want ErrNotFound", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		v := mustPut(t, s, KindSetting, "gone", []byte("x"))
		dv, err := s.Delete(ctx, KindSetting, "gone")
		if err != nil {
			t.Fatal(err)
		}
		if dv.Compare(v) <= 0 {
			t.Fatalf("tombstone version %v not after %v", dv, v)
		}
		if _, err := s.Get(ctx, KindSetting, "gone"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete err = %v, want ErrNotFound", err)
		}
		if _, err := s.Delete(ctx, KindSetting, "gone"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second Delete err = %v, want ErrNotFound", err)
		}
		if _, err := s.Delete(ctx, KindSetting, "never"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Delete of missing err = %v, want ErrNotFound", err)
		}
		ex := mustExport(t, s, KindSetting, "gone")
		if !ex.Tombstone || ex.Version != dv {
			t.Fatalf("Export of tombstone = %+v", ex)
		}
		mustPut(t, s, KindSetting, "gone", []byte("back"))
		mustGet(t, s, KindSetting, "gone", []byte("back"))
		if _, err := s.Delete(ctx, KindSetting, "gone"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("survives reopen", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := n.open(t)
		if !s2.HasMaskingKey() {
			t.Fatal("masking key lost on reopen")
		}
		for _, tc := range tests {
			if tc.id == "obj-1" {
				continue
			}
			r := mustGet(t, s2, tc.kind, tc.id, tc.data)
			if r.Version != versions[tc.name] {
				t.Errorf("%s: version after reopen %v, want %v", tc.name, r.Version, versions[tc.name])
			}
		}
		mustGet(t, s2, KindObject, "obj-1", []byte("v2"))
		v := mustPut(t, s2, KindObject, "after-reopen", nil)
		for name, old := range versions {
			if v.Compare(old) <= 0 {
				t.Errorf("version after reopen %v not after %s's %v", v, name, old)
			}
		}
	})
}

func TestInvalidArgs(t *testing.T) {
	s, _ := newTestStore(t, 1, newMK(t))
	ctx := t.Context()
	tests := []struct {
		name string
		kind Kind
		id   string
		data []byte
	}{
		{"zero kind", 0, "a", nil},
		{"unknown kind", 4, "a", nil},
		{"empty id", KindObject, "", nil},
		{"long id", KindObject, strings.Repeat("a", MaxIDLen+1), nil},
		{"big payload", KindObject, "a", make([]byte, MaxDataLen+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Put(ctx, tc.kind, tc.id, tc.data); err == nil {
				t.Fatal("Put succeeded")
			}
			if tc.data == nil {
				if _, err := s.Get(ctx, tc.kind, tc.id); err == nil || errors.Is(err, ErrNotFound) {
					t.Fatalf("Get err = %v, want an argument error", err)
				}
			}
		})
	}
}

func TestScan(t *testing.T) {
	s, _ := newTestStore(t, 1, newMK(t))
	ctx := t.Context()
	var want []string
	for i := range 2*scanPage + 7 { // several pages
		id := fmt.Sprintf("id-%04d", i)
		mustPut(t, s, KindObject, id, []byte(id))
		if i%5 == 0 {
			if _, err := s.Delete(ctx, KindObject, id); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want = append(want, id)
	}
	mustPut(t, s, KindUser, "not-an-object", []byte("u"))

	t.Run("live records in id order", func(t *testing.T) {
		var got []string
		err := s.Scan(ctx, KindObject, func(r Record) error {
			if r.Kind != KindObject || r.Tombstone || string(r.Data) != r.ID {
				t.Errorf("bad record %+v", r)
			}
			got = append(got, r.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Scan got %d ids, want %d (first diff around %v)", len(got), len(want), firstDiff(got, want))
		}
	})

	t.Run("callback error stops the scan", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := s.Scan(ctx, KindObject, func(Record) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Fatalf("Scan err = %v after %d calls, want stop after 1", err, calls)
		}
	})

	t.Run("callback may write", func(t *testing.T) {
		err := s.Scan(ctx, KindUser, func(r Record) error {
			_, err := s.Put(ctx, KindUser, r.ID+"-copy", r.Data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, KindUser, "not-an-object-copy", []byte("u"))
	})
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("index %d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d vs %d", len(a), len(b))
}

func TestConcurrentWriters(t *testing.T) {
	s, _ := newTestStore(t, 7, newMK(t))
	ctx := t.Context()
	const writers, perWriter = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	versions := make([][]Version, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				// Half the writes hit ids shared by all writers.
				id := fmt.Sprintf("w%d-%d", w, i)
				if i%2 == 1 {
					id = fmt.Sprintf("shared-%d", i%4)
				}
				v, err := s.Put(ctx, KindObject, id, []byte(id))
				if err != nil {
					errs <- err
					return
				}
				versions[w] = append(versions[w], v)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[Version]bool{}
	for w, vs := range versions {
		for i, v := range vs {
			if seen[v] {
				t.Fatalf("version %v issued twice", v)
			}
			seen[v] = true
			if i > 0 && v.Compare(vs[i-1]) <= 0 {
				t.Fatalf("writer %d: version %v not after %v", w, v, vs[i-1])
			}
		}
		for i := 0; i < perWriter; i += 2 {
			id := fmt.Sprintf("w%d-%d", w, i)
			mustGet(t, s, KindObject, id, []byte(id))
		}
	}
	// A shared id holds the write with the greatest version issued for it.
	for i := 1; i < 4; i += 2 {
		id := fmt.Sprintf("shared-%d", i)
		var newest Version
		for _, vs := range versions {
			for j := i; j < perWriter; j += 4 { // the writes of writer w to this id
				if vs[j].Compare(newest) > 0 {
					newest = vs[j]
				}
			}
		}
		if r := mustGet(t, s, KindObject, id, []byte(id)); r.Version != newest {
			t.Fatalf("%s holds version %v, newest write was %v", id, r.Version, newest)
		}
	}
}

func TestClose(t *testing.T) {
	s, _ := newTestStore(t, 1, newMK(t))
	ctx := t.Context()
	mustPut(t, s, KindObject, "a", []byte("a"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checks := map[string]error{}
	_, checks["Put"] = s.Put(ctx, KindObject, "b", nil)
	_, checks["Get"] = s.Get(ctx, KindObject, "a")
	_, checks["Delete"] = s.Delete(ctx, KindObject, "a")
	_, checks["Export"] = s.Export(ctx, KindObject, "a")
	checks["Versions"] = s.Versions(ctx, func(Kind, string, Version, bool) error { return nil })
	checks["SetMaskingKey"] = s.SetMaskingKey(ctx, newMK(t))
	for op, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", op, err)
		}
	}
}
