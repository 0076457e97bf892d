package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// lineVersion is the "v" of an unkeyed line, keyedLineVersion of a keyed
// one (its hash is a MAC).
const (
	lineVersion      = 1
	keyedLineVersion = 2
)

// MaxLineBytes bounds one line of the log, newline included. Lines the
// writer produces stay well below it (five fields of MaxFieldBytes, each
// byte escaped to at most six).
const MaxLineBytes = 64 << 10

// appendLine appends r as one JSON line, newline included. It is the only
// encoding a reader accepts.
func appendLine(dst []byte, r *Record) []byte {
	dst = append(dst, `{"v":`...)
	if r.Keyed {
		dst = strconv.AppendInt(dst, keyedLineVersion, 10)
	} else {
		dst = strconv.AppendInt(dst, lineVersion, 10)
	}
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = r.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","user":`...)
	dst = appendJSONString(dst, r.User)
	dst = append(dst, `,"role":`...)
	dst = appendJSONString(dst, r.Role)
	dst = append(dst, `,"session":`...)
	dst = strconv.AppendUint(dst, r.Session, 10)
	dst = append(dst, `,"op":`...)
	dst = appendJSONString(dst, r.Op)
	dst = append(dst, `,"object":`...)
	dst = strconv.AppendUint(dst, r.Object, 10)
	dst = append(dst, `,"target":`...)
	dst = appendJSONString(dst, r.Target)
	dst = append(dst, `,"result":`...)
	dst = appendJSONString(dst, r.Result)
	dst = append(dst, `,"prev":"`...)
	dst = hex.AppendEncode(dst, r.Prev[:])
	dst = append(dst, `","hash":"`...)
	dst = hex.AppendEncode(dst, r.Hash[:])
	return append(dst, "\"}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping only '"', '\\' and
// control characters. s must be valid UTF-8 for the result to read back
// unchanged (the writer guarantees it; see cleanField).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// wireRecord is the JSON shape of a line, for decoding.
type wireRecord struct {
	V       int    `json:"v"`
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	User    string `json:"user"`
	Role    string `json:"role"`
	Session uint64 `json:"session"`
	Op      string `json:"op"`
	Object  uint64 `json:"object"`
	Target  string `json:"target"`
	Result  string `json:"result"`
	Prev    string `json:"prev"`
	Hash    string `json:"hash"`
}

// parseLine decodes one line (without its newline). It accepts only the
// exact bytes appendLine would write for the record, so every byte of the
// line is either covered by the hash or fixed by the format. scratch is a
// reusable buffer; the grown buffer is returned. It does not check the hash.
func parseLine(line, scratch []byte) (Record, []byte, error) {
	var w wireRecord
	if err := json.Unmarshal(line, &w); err != nil {
		return Record{}, scratch, fmt.Errorf("not a JSON record: %w", err)
	}
	if w.V != lineVersion && w.V != keyedLineVersion {
		return Record{}, scratch, fmt.Errorf("unknown version %d", w.V)
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return Record{}, scratch, fmt.Errorf("bad time: %w", err)
	}
	r := Record{
		Seq:   w.Seq,
		Keyed: w.V == keyedLineVersion,
		Event: Event{
			Time: t.UTC(), User: w.User, Role: w.Role, Session: w.Session,
			Op: w.Op, Object: w.Object, Target: w.Target, Result: w.Result,
		},
	}
	if err := decodeHash(&r.Prev, w.Prev); err != nil {
		return Record{}, scratch, fmt.Errorf("bad prev: %w", err)
	}
	if err := decodeHash(&r.Hash, w.Hash); err != nil {
		return Record{}, scratch, fmt.Errorf("bad hash: %w", err)
	}
	scratch = appendLine(scratch[:0], &r)
	if !bytes.Equal(scratch[:len(scratch)-1], line) {
		return Record{}, scratch, fmt.Errorf("not in canonical form")
	}
	return r, scratch, nil
}

func decodeHash(dst *[32]byte, s string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("want %d hex digits, got %d", 2*len(dst), len(s))
	}
	_, err := hex.Decode(dst[:], []byte(s))
	return err
}
