package audit

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzVerify feeds arbitrary bytes to Verify: it must not panic, and what
// it accepts must be a well-formed log that verifies against its own head.
func FuzzVerify(f *testing.F) {
	lines := chainLines(f, 4)
	all := join(lines...)
	f.Add([]byte{})
	f.Add(all)
	f.Add(all[:len(all)-7])
	f.Add(join(lines[0], lines[2]))
	f.Add(bytes.Replace(all, []byte("user-2"), []byte("user-X"), 1))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, head, err := Verify(bytes.NewReader(data), nil)
		if err != nil {
			ve, ok := errors.AsType[*VerifyError](err)
			if !ok {
				t.Fatalf("error from an in-memory reader is not a VerifyError: %v", err)
			}
			if ve.Offset < 0 || ve.Offset > int64(len(data)) || ve.Seq != head.Seq+1 || n != head.Seq {
				t.Fatalf("inconsistent error %v with n=%d head=%d", err, n, head.Seq)
			}
			return
		}
		if n != head.Seq || bytes.Count(data, []byte("\n")) != int(n) || (len(data) > 0 && data[len(data)-1] != '\n') {
			t.Fatalf("accepted %q as %d records to %d", data, n, head.Seq)
		}
		if _, _, err := Verify(bytes.NewReader(data), &head); err != nil {
			t.Fatalf("log does not verify against its own head: %v", err)
		}
	})
}

// FuzzParseLine checks that a line is accepted only in the exact form the
// writer produces: parse then encode gives back the same bytes.
func FuzzParseLine(f *testing.F) {
	for _, l := range chainLines(f, 2) {
		f.Add(l[:len(l)-1])
	}
	f.Add([]byte(`{"v":1,"seq":1,"time":"0000-01-01T00:00:00Z","user":"\u0000\"","role":"","session":0,"op":"","object":0,"target":"","result":"","prev":"","hash":""}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, _, err := parseLine(line, nil)
		if err != nil {
			return
		}
		if got := appendLine(nil, &rec); !bytes.Equal(got[:len(got)-1], line) {
			t.Fatalf("parseLine accepted %q, which encodes back as %q", line, got)
		}
	})
}
