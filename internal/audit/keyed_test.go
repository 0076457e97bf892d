package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var testKey = bytes.Repeat([]byte{7}, KeySize)

// keyedLog writes n events to a new log keyed with testKey and returns its
// path and the last anchor OnDurable was given.
func keyedLog(t *testing.T, n int) (string, Anchor) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	var mu sync.Mutex
	var anchor Anchor
	l, err := Open(t.Context(), Config{Path: path, Now: fixedNow, Key: testKey, OnDurable: func(a Anchor) error {
		mu.Lock()
		anchor = a
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.AppendSync(t.Context(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if anchor.Seq != uint64(n) {
		t.Fatalf("OnDurable's last anchor is record %d, want %d", anchor.Seq, n)
	}
	return path, anchor
}

// rechain re-encodes the records of a log with edit applied to each, each
// record's hash recomputed by hash (an attacker's chain).
func rechain(t *testing.T, data []byte, edit func(*Record), sum func(*Record) [32]byte) []byte {
	t.Helper()
	var out []byte
	var prev [32]byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		rec, _, err := parseLine(bytes.TrimSuffix(line, []byte("\n")), nil)
		if err != nil {
			t.Fatal(err)
		}
		edit(&rec)
		rec.Prev = prev
		rec.Hash = sum(&rec)
		prev = rec.Hash
		out = appendLine(out, &rec)
	}
	return out
}

// TestKeyedRewriteDetected: a keyed log rewritten with a recomputed chain
// (unkeyed SHA-256, or MACs under another key) fails verification with the
// key and the anchor; the unkeyed Verify refuses to vouch for a keyed log.
func TestKeyedRewriteDetected(t *testing.T) {
	path, anchor := keyedLog(t, 5)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := VerifyKeyed(bytes.NewReader(data), testKey, &anchor); err != nil || res.Records != 5 || res.Unkeyed != 0 {
		t.Fatalf("VerifyKeyed of the log as written = %+v, %v", res, err)
	}
	if _, _, err := Verify(bytes.NewReader(data), nil); !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("unkeyed Verify of a keyed log: %v, want ErrKeyRequired", err)
	}
	editUser := func(r *Record) {
		if r.Seq == 3 {
			r.User = "mallory"
		}
	}
	unkeyed := func(r *Record) [32]byte {
		r.Keyed = false
		h, _ := computeHash(nil, r)
		return h
	}
	otherKey := func(r *Record) [32]byte {
		mac, err := newMAC(bytes.Repeat([]byte{9}, KeySize))
		if err != nil {
			t.Fatal(err)
		}
		h, _ := recordHash(nil, r, mac)
		return h
	}
	cut := bytes.SplitAfter(data, []byte("\n"))
	tests := []struct {
		name   string
		log    []byte
		anchor *Anchor
		want   error
	}{
		{"unkeyed chain recomputed", rechain(t, data, editUser, unkeyed), &anchor, ErrAnchorMismatch},
		{"unkeyed chain recomputed, tail unkeyed", append(join(cut[:2]...), rechain(t, join(cut[2:]...), editUser, unkeyed)...), nil, ErrChain},
		{"MACs under another key", rechain(t, data, editUser, otherKey), nil, ErrHash},
		{"MACs under another key, kept anchor", rechain(t, data, func(*Record) {}, otherKey), &anchor, ErrHash},
		{"last record cut off", join(cut[:4]...), &anchor, ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := VerifyKeyed(bytes.NewReader(tc.log), testKey, tc.anchor); !errors.Is(err, tc.want) {
				t.Fatalf("VerifyKeyed = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestAnchorDetectsTruncation: the anchor OnDurable kept makes Open and
// VerifyKeyed refuse a log whose tail was cut off.
func TestAnchorDetectsTruncation(t *testing.T) {
	path, anchor := keyedLog(t, 4)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if err := os.WriteFile(path, join(lines[:3]...), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := VerifyKeyed(f, testKey, &anchor); !errors.Is(err, ErrTruncated) {
		t.Fatalf("VerifyKeyed of a truncated log = %v, want ErrTruncated", err)
	}
	if _, err := Open(t.Context(), Config{Path: path, Key: testKey, Anchor: &anchor}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Open of a truncated log = %v, want ErrTruncated", err)
	}
}

// TestSetKey: a log that was unkeyed becomes keyed from SetKey on; it is
// then read only with the key, and an unkeyed record after keyed ones is
// refused.
func TestSetKey(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(ctx, Config{Path: path, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := l.AppendSync(ctx, testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SetKey(testKey[:5]); err == nil {
		t.Fatal("SetKey accepted a short key")
	}
	if err := l.SetKey(testKey); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 5; i++ {
		if err := l.AppendSync(ctx, testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := VerifyKeyed(bytes.NewReader(data), testKey, nil)
	if err != nil || res.Records != 5 || res.Unkeyed != 2 {
		t.Fatalf("VerifyKeyed = %+v, %v; want 5 records, 2 unkeyed", res, err)
	}
	if _, err := Open(ctx, Config{Path: path}); !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("Open without the key = %v, want ErrKeyRequired", err)
	}
	l, err = Open(ctx, Config{Path: path, Key: testKey, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendSync(ctx, testEvent(5)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := VerifyKeyed(bytes.NewReader(data), testKey, nil); err != nil || res.Records != 6 || res.Unkeyed != 2 {
		t.Fatalf("after reopening with the key: %+v, %v", res, err)
	}
	// An unkeyed record appended after the keyed ones.
	lines := bytes.SplitAfter(data, []byte("\n"))
	last, _, err := parseLine(bytes.TrimSuffix(lines[5], []byte("\n")), nil)
	if err != nil {
		t.Fatal(err)
	}
	next := Record{Seq: 7, Event: last.Event, Prev: last.Hash}
	next.Hash, _ = computeHash(nil, &next)
	if _, err := VerifyKeyed(bytes.NewReader(appendLine(data, &next)), testKey, nil); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("VerifyKeyed with an unkeyed tail = %v, want ErrDowngrade", err)
	}
	// A Reader without the key reads a keyed log (the control plane reads
	// events from it) without vouching for its MACs.
	rd := NewReader(bytes.NewReader(data))
	n := 0
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
		n++
	}
	if n != 6 {
		t.Fatalf("NewReader read %d records, want 6", n)
	}
}

func TestDeriveKey(t *testing.T) {
	a, err := DeriveKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DeriveKey(bytes.Repeat([]byte{1}, 32))
	c, _ := DeriveKey(bytes.Repeat([]byte{2}, 32))
	if len(a) != KeySize || !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatalf("DeriveKey: %x %x %x", a, b, c)
	}
	if _, err := DeriveKey(nil); err == nil {
		t.Fatal("DeriveKey accepted an empty masking key")
	}
	var anchor Anchor
	enc, _ := Anchor{Seq: 9, Hash: [32]byte{1, 2}}.MarshalBinary()
	if err := anchor.UnmarshalBinary(enc); err != nil || anchor.Seq != 9 || anchor.Hash[1] != 2 {
		t.Fatalf("anchor round trip: %+v, %v", anchor, err)
	}
}
