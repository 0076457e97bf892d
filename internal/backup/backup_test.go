package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/store"
)

func testKey(t testing.TB) []byte {
	k := make([]byte, KeyLen)
	rand.Read(k)
	return k
}

func testRecords(n int) []store.Sealed {
	recs := make([]store.Sealed, n)
	for i := range recs {
		box := make([]byte, 28+i%50)
		rand.Read(box)
		recs[i] = store.Sealed{
			Kind: store.Kind(1 + i%3), ID: fmt.Sprintf("rec-%05d", i),
			Version: store.Version{Wall: int64(1_000_000 + i), Logical: uint32(i), Node: 7}, Tombstone: i%7 == 3, Box: box,
		}
	}
	return recs
}

func testHeader(id string, n int) Header {
	return Header{
		BackupID: id, SourceClusterID: "cluster-abc", Created: time.Unix(1_700_000_000, 5).UTC(), NodeID: 7,
		MKCheck: bytes.Repeat([]byte{0xab}, 32), FIPS: true, ClusterCertificate: "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n",
		TrustAnchor: "anchor", ClusterCSR: "csr", Activated: true, Records: uint64(n),
	}
}

// makeBlob writes a blob of recs bound to id under key.
func makeBlob(t testing.TB, key []byte, id string, mk, ck []byte, recs []store.Sealed) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, key, testHeader(id, len(recs)), mk, ck)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(buf.Len()) {
		t.Fatalf("Size %d, wrote %d", w.Size(), buf.Len())
	}
	return buf.Bytes()
}

func open(b, key []byte, id string) (*Backup, error) {
	return Open(bytes.NewReader(b), int64(len(b)), key, id)
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		ck   []byte
	}{{"empty", 0, nil}, {"records", 200, nil}, {"cluster key", 5, []byte("pkcs8 der bytes")}} {
		t.Run(tc.name, func(t *testing.T) {
			key, mk := testKey(t), testKey(t)
			recs := testRecords(tc.n)
			blob := makeBlob(t, key, "backup-1", mk, tc.ck, recs)
			if bytes.Contains(blob, mk) {
				t.Fatal("the blob holds the masking key in the clear")
			}
			if tc.ck != nil && bytes.Contains(blob, tc.ck) {
				t.Fatal("the blob holds the cluster key in the clear")
			}
			b, err := open(blob, key, "backup-1")
			if err != nil {
				t.Fatal(err)
			}
			want := testHeader("backup-1", tc.n)
			if fmt.Sprint(b.Header) != fmt.Sprint(want) {
				t.Errorf("header\n got %+v\nwant %+v", b.Header, want)
			}
			if !bytes.Equal(b.MaskingKey(), mk) || !bytes.Equal(b.ClusterKey(), tc.ck) {
				t.Error("keys differ")
			}
			var got []store.Sealed
			if err := b.Records(t.Context(), func(r store.Sealed) error { got = append(got, r); return nil }); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(recs) && !(len(got) == 0 && len(recs) == 0) {
				t.Errorf("records differ")
			}
		})
	}
}

func TestWriterCount(t *testing.T) {
	key, mk := testKey(t), testKey(t)
	w, err := NewWriter(&bytes.Buffer{}, key, testHeader("b", 2), mk, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := testRecords(3)
	if err := w.Add(recs[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close with a record missing succeeded")
	}
	w, _ = NewWriter(&bytes.Buffer{}, key, testHeader("b", 1), mk, nil)
	w.Add(recs[0])
	if err := w.Add(recs[1]); err == nil {
		t.Fatal("an extra record was accepted")
	}
}

func wantReason(t *testing.T, err error, r Reason) {
	t.Helper()
	if !errors.Is(err, ErrRefused) || reasonOf(err) != r {
		t.Fatalf("got %v, want a refusal: %s", err, r)
	}
}

func TestRefusals(t *testing.T) {
	key, mk := testKey(t), testKey(t)
	blob := makeBlob(t, key, "backup-1", mk, []byte("ck"), testRecords(20))
	other := makeBlob(t, key, "backup-2", mk, nil, testRecords(3))
	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 0x01
		return b
	}
	for _, tc := range []struct {
		name string
		blob []byte
		key  []byte
		id   string
		want Reason
	}{
		{"not a backup", []byte("PK\x03\x04 a zip file, perhaps"), key, "backup-1", NotABackup},
		{"empty", nil, key, "backup-1", Truncated},
		{"future version", append([]byte(magic+"\x02"), blob[9:]...), key, "backup-1", NotABackup},
		{"half", blob[:len(blob)/2], key, "backup-1", Truncated},
		{"last byte cut", blob[:len(blob)-1], key, "backup-1", Truncated},
		{"bytes appended", append(bytes.Clone(blob), 0), key, "backup-1", Truncated},
		{"record edited", flip(len(blob) - trailerLen - 10), key, "backup-1", Edited},
		{"tag edited", flip(len(blob) - 1), key, "backup-1", Edited},
		{"swapped", other, key, "backup-1", OtherBackup},
		{"replayed under another id", blob, key, "backup-3", OtherBackup},
		{"wrong key", blob, testKey(t), "backup-1", WrongKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := open(tc.blob, tc.key, tc.id)
			wantReason(t, err, tc.want)
			if tc.name == "replayed under another id" && !bytes.Contains([]byte(err.Error()), []byte(`"backup-1"`)) {
				t.Errorf("message %q does not name the id the blob is bound to", err)
			}
		})
	}
}

// TestEveryCut: a blob cut at any length is refused as truncated.
func TestEveryCut(t *testing.T) {
	key, mk := testKey(t), testKey(t)
	blob := makeBlob(t, key, "backup-1", mk, []byte("ck"), testRecords(4))
	for n := 0; n < len(blob); n++ {
		_, err := open(blob[:n], key, "backup-1")
		if reasonOf(err) != Truncated {
			t.Fatalf("cut at %d of %d: %v", n, len(blob), err)
		}
	}
}

// TestEveryByte: a change to any byte is refused; beyond the header, as
// edited (or, in the trailer's marker and length, as truncated).
func TestEveryByte(t *testing.T) {
	key, mk := testKey(t), testKey(t)
	blob := makeBlob(t, key, "backup-1", mk, []byte("ck"), testRecords(4))
	b, err := open(blob, key, "backup-1")
	if err != nil {
		t.Fatal(err)
	}
	hdrEnd := len(b.pre)
	for i := range blob {
		e := bytes.Clone(blob)
		e[i] ^= 0x80
		_, err := open(e, key, "backup-1")
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("byte %d changed: %v", i, err)
		}
		inTrailerHead := i >= len(blob)-trailerLen && i < len(blob)-macLen
		if i >= hdrEnd && !inTrailerHead && reasonOf(err) != Edited {
			t.Fatalf("byte %d changed: %v, want edited", i, err)
		}
	}
}

// TestChangedAfterOpen: a file rewritten between Open and Records fails
// Records, after the last record at the latest.
func TestChangedAfterOpen(t *testing.T) {
	key, mk := testKey(t), testKey(t)
	blob := makeBlob(t, key, "backup-1", mk, nil, testRecords(30))
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := Open(f, int64(len(blob)), key, "backup-1")
	if err != nil {
		t.Fatal(err)
	}
	blob[len(blob)-trailerLen-5] ^= 1
	if err := os.WriteFile(path, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	err = b.Records(context.Background(), func(store.Sealed) error { return nil })
	wantReason(t, err, Edited)
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "backup.key")
	created, err := CreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	k1, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	created, err = CreateKeyFile(path)
	if err != nil || created {
		t.Fatalf("second create: %v %v", created, err)
	}
	k2, _ := ReadKeyFile(path)
	if !bytes.Equal(k1, k2) {
		t.Fatal("a second CreateKeyFile changed the key")
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("group-readable key: %v", err)
	}
	if _, err := CreateKeyFile(path); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("create over a group-readable key: %v", err)
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc"), 0o600)
	if _, err := ReadKeyFile(short); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("short key: %v", err)
	}
}

// reasonOf returns the reason of a refused blob, zero if err is no
// *RefusedError.
func reasonOf(err error) Reason {
	if e, ok := errors.AsType[*RefusedError](err); ok {
		return e.Reason
	}
	return 0
}
