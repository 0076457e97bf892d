package audit

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestVerify(t *testing.T) {
	const n = 10
	lines := chainLines(t, n)
	all := join(lines...)
	head := anchorOf(t, lines[n-1])
	at := func(seq int) Anchor { return anchorOf(t, lines[seq-1]) }

	// rehashed edits record 4 and fixes its hash, as a forger would.
	forge := func(i int) []byte {
		rec, _, err := parseLine(bytes.TrimSuffix(lines[i], []byte("\n")), nil)
		if err != nil {
			t.Fatal(err)
		}
		rec.User = "mallory"
		rec.Hash, _ = computeHash(nil, &rec)
		return appendLine(nil, &rec)
	}
	rehashed := join(join(lines[:3]...), forge(3), join(lines[4:]...))
	// inserted is a well-formed record 6 chained to record 5, put before
	// the real record 6.
	inserted := join(join(lines[:5]...), forge(5), join(lines[5:]...))
	replaceIn := func(i int, old, new string) []byte {
		l := bytes.Replace(lines[i], []byte(old), []byte(new), 1)
		if bytes.Equal(l, lines[i]) {
			t.Fatalf("line %d has no %q", i, old)
		}
		return join(join(lines[:i]...), l, join(lines[i+1:]...))
	}
	offsetOf := func(i int) int64 { return int64(len(join(lines[:i]...))) }

	tests := []struct {
		name     string
		log      []byte
		anchor   *Anchor
		wantN    uint64
		wantHead Anchor
		wantErr  error  // nil: must verify
		wantSeq  uint64 // VerifyError.Seq
		wantOff  int64  // VerifyError.Offset
	}{
		{name: "ok", log: all, wantN: n, wantHead: head},
		{name: "empty", log: nil, wantN: 0},
		{name: "empty with zero anchor", log: nil, anchor: &Anchor{}, wantN: 0},
		{name: "ok with head anchor", log: all, anchor: &head, wantN: n, wantHead: head},
		{name: "ok with middle anchor", log: all, anchor: ptr(at(4)), wantN: n, wantHead: head},
		{name: "edit user", log: replaceIn(3, `"user-4"`, `"mallory"`), wantN: 3, wantHead: at(3),
			wantErr: ErrHash, wantSeq: 4, wantOff: offsetOf(3)},
		{name: "edit result", log: replaceIn(6, `"result":"ok"`, `"result":"CKR_OK"`), wantN: 6, wantHead: at(6),
			wantErr: ErrHash, wantSeq: 7, wantOff: offsetOf(6)},
		{name: "edit object", log: replaceIn(0, `"object":1000`, `"object":1001`), wantN: 0,
			wantErr: ErrHash, wantSeq: 1, wantOff: 0},
		{name: "edit seq", log: replaceIn(4, `"seq":5`, `"seq":6`), wantN: 4, wantHead: at(4),
			wantErr: ErrSequence, wantSeq: 5, wantOff: offsetOf(4)},
		{name: "edit prev", log: replaceIn(4, `"prev":"`, `"prev":"0`), wantN: 4, wantHead: at(4),
			wantErr: ErrMalformed, wantSeq: 5, wantOff: offsetOf(4)},
		{name: "edit and rehash", log: rehashed, wantN: 4,
			wantErr: ErrChain, wantSeq: 5, wantOff: offsetOf(4) + int64(len("mallory")-len("user-4"))},
		{name: "delete middle line", log: join(join(lines[:4]...), join(lines[5:]...)), wantN: 4, wantHead: at(4),
			wantErr: ErrSequence, wantSeq: 5, wantOff: offsetOf(4)},
		{name: "delete first line", log: join(lines[1:]...), wantN: 0,
			wantErr: ErrSequence, wantSeq: 1, wantOff: 0},
		{name: "swap two lines", log: join(join(lines[:2]...), lines[3], lines[2], join(lines[4:]...)), wantN: 2, wantHead: at(2),
			wantErr: ErrSequence, wantSeq: 3, wantOff: offsetOf(2)},
		{name: "duplicate line", log: join(join(lines[:5]...), lines[4], join(lines[5:]...)), wantN: 5, wantHead: at(5),
			wantErr: ErrSequence, wantSeq: 6, wantOff: offsetOf(5)},
		{name: "insert forged record", log: inserted, wantN: 6,
			wantErr: ErrSequence, wantSeq: 7, wantOff: offsetOf(6) + int64(len("mallory")-len("user-6"))},
		{name: "truncated tail without anchor", log: join(lines[:6]...), wantN: 6, wantHead: at(6)},
		{name: "truncated tail with anchor", log: join(lines[:6]...), anchor: &head, wantN: 6, wantHead: at(6),
			wantErr: ErrTruncated, wantSeq: 7, wantOff: offsetOf(6)},
		{name: "everything deleted with anchor", log: nil, anchor: &head, wantN: 0,
			wantErr: ErrTruncated, wantSeq: 1, wantOff: 0},
		{name: "anchor hash mismatch", log: all, anchor: &Anchor{Seq: 5, Hash: head.Hash}, wantN: 4, wantHead: at(4),
			wantErr: ErrAnchorMismatch, wantSeq: 5, wantOff: offsetOf(4)},
		{name: "anchor seq 0 with hash", log: all, anchor: &Anchor{Hash: head.Hash}, wantN: 0,
			wantErr: ErrAnchorMismatch, wantSeq: 0, wantOff: 0},
		{name: "torn tail", log: join(all, lines[0][:20]), wantN: n, wantHead: head,
			wantErr: ErrTornTail, wantSeq: n + 1, wantOff: offsetOf(n)},
		{name: "missing final newline", log: all[:len(all)-1], wantN: n - 1, wantHead: at(n - 1),
			wantErr: ErrTornTail, wantSeq: n, wantOff: offsetOf(n - 1)},
		{name: "garbage line", log: join(all, []byte("garbage\n")), wantN: n, wantHead: head,
			wantErr: ErrMalformed, wantSeq: n + 1, wantOff: offsetOf(n)},
		{name: "blank line", log: join(join(lines[:3]...), []byte("\n"), join(lines[3:]...)), wantN: 3, wantHead: at(3),
			wantErr: ErrMalformed, wantSeq: 4, wantOff: offsetOf(3)},
		{name: "CRLF", log: bytes.ReplaceAll(all, []byte("\n"), []byte("\r\n")), wantN: 0,
			wantErr: ErrMalformed, wantSeq: 1, wantOff: 0},
		{name: "overlong line", log: join(all, bytes.Repeat([]byte("x"), MaxLineBytes+1), []byte("\n")), wantN: n, wantHead: head,
			wantErr: ErrMalformed, wantSeq: n + 1, wantOff: offsetOf(n)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotN, gotHead, err := Verify(bytes.NewReader(tt.log), tt.anchor)
			if gotN != tt.wantN {
				t.Errorf("n = %d, want %d", gotN, tt.wantN)
			}
			if tt.wantHead != (Anchor{}) && gotHead != tt.wantHead {
				t.Errorf("head = %d/%s, want %d/%s", gotHead.Seq, short(gotHead.Hash), tt.wantHead.Seq, short(tt.wantHead.Hash))
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			ve, ok := errors.AsType[*VerifyError](err)
			if !ok {
				t.Fatalf("Verify error = %v, want a *VerifyError wrapping %v", err, tt.wantErr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if ve.Seq != tt.wantSeq || ve.Offset != tt.wantOff {
				t.Errorf("error at seq %d offset %d, want seq %d offset %d (%v)", ve.Seq, ve.Offset, tt.wantSeq, tt.wantOff, err)
			}
			if !strings.Contains(err.Error(), "record") || ve.Reason == "" {
				t.Errorf("error %q lacks a location or a reason", err)
			}
		})
	}
}

func TestVerifyReadError(t *testing.T) {
	lines := chainLines(t, 3)
	r := io.MultiReader(bytes.NewReader(join(lines...)), iotest.ErrReader(errors.New("disk on fire")))
	n, head, err := Verify(r, nil)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Verify error = %v, want the read error", err)
	}
	if _, ok := errors.AsType[*VerifyError](err); ok {
		t.Errorf("a read failure is reported as tampering: %v", err)
	}
	if n != 3 || head != anchorOf(t, lines[2]) {
		t.Errorf("n, head = %d, %d; want 3 records verified before the failure", n, head.Seq)
	}
}

func TestReaderSticky(t *testing.T) {
	lines := chainLines(t, 3)
	r := NewReader(bytes.NewReader(join(lines[0], lines[2])))
	if _, err := r.Next(); err != nil {
		t.Fatalf("first record: %v", err)
	}
	_, err1 := r.Next()
	_, err2 := r.Next()
	if !errors.Is(err1, ErrSequence) || err2 != err1 {
		t.Errorf("errors = %v, %v; want the same sequence break twice", err1, err2)
	}
	if r.Head().Seq != 1 {
		t.Errorf("head = %d, want 1", r.Head().Seq)
	}
}

func ptr[T any](v T) *T { return &v }
