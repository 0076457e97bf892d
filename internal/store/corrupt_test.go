package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// editRaw rewrites the database file directly, outside the store.
func editRaw(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedRecord(t *testing.T) {
	const id = "victim"
	idEnd := headerFixed + len(id)
	flip := func(off int) func([]byte) []byte {
		return func(raw []byte) []byte {
			if off < 0 {
				off += len(raw)
			}
			raw[off] ^= 0x01
			return raw
		}
	}
	tests := []struct {
		name string
		edit func(raw []byte) []byte
	}{
		{"format version", flip(0)},
		{"kind", flip(1)},
		{"tombstone flag", flip(2)},
		{"unknown flag", func(raw []byte) []byte { raw[2] |= 0x80; return raw }},
		{"wall", flip(10)},
		{"logical", flip(14)},
		{"node", flip(18)},
		{"id length", flip(20)},
		{"id", flip(headerFixed)},
		{"nonce", flip(idEnd)},
		{"ciphertext", flip(idEnd + 12)},
		{"tag", flip(-1)},
		{"truncated box", func(raw []byte) []byte { return raw[:len(raw)-1] }},
		{"box cut to header", func(raw []byte) []byte { return raw[:idEnd] }},
		{"extra byte", func(raw []byte) []byte { return append(raw, 0) }},
		{"empty value", func([]byte) []byte { return []byte{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, n := newTestStore(t, 1, newMK(t))
			mustPut(t, s, KindObject, id, []byte("secret payload"))
			mustPut(t, s, KindObject, "bystander", []byte("fine"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			editRaw(t, n.cfg.Path, func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketName(KindObject))
				return b.Put([]byte(id), tc.edit(bytes.Clone(b.Get([]byte(id)))))
			})
			s = n.open(t) // a corrupt record does not stop the node
			assertCorrupt(t, s, KindObject, id)
			mustGet(t, s, KindObject, "bystander", []byte("fine"))
		})
	}
}

// assertCorrupt checks that every way of reading (kind, id) reports it corrupt.
func assertCorrupt(t *testing.T, s *Store, kind Kind, id string) {
	t.Helper()
	ctx := t.Context()
	check := func(op string, err error) {
		t.Helper()
		ce, ok := errors.AsType[*CorruptError](err)
		if !ok {
			t.Fatalf("%s: err = %v, want *CorruptError", op, err)
		}
		if ce.Kind != kind || ce.ID != id || !strings.Contains(err.Error(), fmt.Sprintf("%q", id)) {
			t.Fatalf("%s: CorruptError %+v (%q) does not name %s %q", op, ce, err, kind, id)
		}
	}
	_, err := s.Get(ctx, kind, id)
	check("Get", err)
	_, err = s.Export(ctx, kind, id)
	check("Export", err)
	// Scan stops at the first corrupt record of the kind, which may be another.
	err = s.Scan(ctx, kind, func(Record) error { return nil })
	if ce, ok := errors.AsType[*CorruptError](err); !ok || ce.Kind != kind {
		t.Fatalf("Scan: err = %v, want *CorruptError for a %s", err, kind)
	}
}

func TestMovedRecord(t *testing.T) {
	s, n := newTestStore(t, 1, newMK(t))
	va := mustPut(t, s, KindUser, "alice", []byte("alice's hash"))
	mustPut(t, s, KindUser, "mallory", []byte("mallory's hash"))
	old := mustPut(t, s, KindUser, "bob", []byte("bob v1"))
	mustPut(t, s, KindUser, "bob", []byte("bob v2"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	editRaw(t, n.cfg.Path, func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketName(KindUser))
		alice := bytes.Clone(users.Get([]byte("alice")))
		aliceBox := alice[headerFixed+len("alice"):]
		// alice's record stored under mallory's id, as is.
		if err := users.Put([]byte("mallory"), alice); err != nil {
			return err
		}
		// alice's box under a well-formed header naming eve.
		eve := append(appendHeader(nil, KindUser, "eve", va, false), aliceBox...)
		if err := users.Put([]byte("eve"), eve); err != nil {
			return err
		}
		// alice's record moved to another kind.
		if err := tx.Bucket(bucketName(KindSetting)).Put([]byte("alice"), alice); err != nil {
			return err
		}
		// bob's current box relabelled with his old version.
		bob := bytes.Clone(users.Get([]byte("bob")))
		replay := append(appendHeader(nil, KindUser, "bob", old, false), bob[headerFixed+len("bob"):]...)
		return users.Put([]byte("bob"), replay)
	})
	s = n.open(t)
	assertCorrupt(t, s, KindUser, "mallory")
	assertCorrupt(t, s, KindUser, "eve")
	assertCorrupt(t, s, KindSetting, "alice")
	assertCorrupt(t, s, KindUser, "bob")
	mustGet(t, s, KindUser, "alice", []byte("alice's hash"))
	if err := s.Versions(t.Context(), func(Kind, string, Version, bool) error { return nil }); err == nil {
		t.Fatal("Versions did not report the record stored under the wrong id")
	}
	// A corrupt record can be overwritten by a local write.
	mustPut(t, s, KindUser, "bob", []byte("bob v3"))
	mustGet(t, s, KindUser, "bob", []byte("bob v3"))
}

func TestCorruptDatabaseFile(t *testing.T) {
	n := newTestNode(t, 1)
	s := n.open(t)
	if err := s.SetMaskingKey(t.Context(), newMK(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		mustPut(t, s, KindObject, fmt.Sprintf("obj-%d", i), bytes.Repeat([]byte{byte(i)}, 1000))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(n.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	var used int64      // bytes bbolt's metadata says are in use; the file has slack after
	freelist := int(-1) // the freelist's page
	db, err := bolt.Open(n.cfg.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		used = tx.Size()
		for id := 0; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			if info.Type == "freelist" {
				freelist = id
			}
		}
	})
	db.Close()
	page := os.Getpagesize()
	if freelist < 2 || used <= int64(4*page) {
		t.Fatalf("freelist page %d, %d bytes used: test needs a bigger database", freelist, used)
	}
	badFreelist := bytes.Clone(good)
	clear(badFreelist[freelist*page : (freelist+1)*page])
	garbage := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	zeroMeta := bytes.Clone(good)
	clear(zeroMeta[:2*page])

	tests := []struct {
		name string
		data []byte
		// bbolt panics on this one inside Open; the recovered panic leaves
		// the file mapped, and so locked, until the process exits.
		staysLocked bool
	}{
		{name: "empty", data: nil},
		{name: "100 bytes", data: good[:100]},
		{name: "one page", data: good[:page]},
		{name: "meta pages only", data: good[:2*page]},
		{name: "four pages", data: good[:4*page]},
		{name: "half", data: good[:used/2]},
		{name: "last used page cut", data: good[:used-int64(page)]},
		{name: "garbage", data: garbage},
		{name: "zeroed meta pages", data: zeroMeta},
		{name: "zeroed freelist page", data: badFreelist, staysLocked: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := n.cfg
			cfg.Path = n.dir + "/" + strings.ReplaceAll(tc.name, " ", "_") + ".db"
			writeFile(t, cfg.Path, tc.data)
			s, err := Open(t.Context(), cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Open of a %d-byte damaged file succeeded", len(tc.data))
			}
			if !errors.Is(err, ErrCorruptDatabase) || !strings.Contains(err.Error(), cfg.Path) {
				t.Fatalf("err = %v, want ErrCorruptDatabase naming %s", err, cfg.Path)
			}
			t.Logf("Open: %v", err)
			if tc.staysLocked {
				return
			}
			// The failed open released the file.
			db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: 100 * time.Millisecond, ReadOnly: true})
			if errors.Is(err, bolt.ErrTimeout) {
				t.Fatal("failed Open left the file locked")
			}
			if err == nil {
				db.Close()
			}
		})
	}
}

func TestSecondOpenerFailsFast(t *testing.T) {
	n := newTestNode(t, 1)
	n.open(t)
	cfg := n.cfg
	cfg.LockTimeout = 50 * time.Millisecond
	s, err := Open(t.Context(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("second Open succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), cfg.Path) {
		t.Fatalf("err = %v, want ErrLocked naming %s", err, cfg.Path)
	}
}
