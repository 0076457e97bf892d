package audit

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestLineRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
	}{
		{"empty", Event{Time: testEpoch}},
		{"typical", testEvent(0)},
		{"login failure", Event{Time: testEpoch, Session: 9, Op: "login", Target: "bob", Result: "CKR_PIN_INCORRECT"}},
		{"escapes", Event{Time: testEpoch, User: "a\"b\\c\nd\re\tf\x00g\x1fh\x7f</>&", Op: "x"}},
		{"unicode", Event{Time: testEpoch, User: "ünïcødé ✓ 𝄞", Target: "\u2028\u2029"}},
		{"max ints", Event{Time: testEpoch, Session: ^uint64(0), Object: ^uint64(0)}},
		{"year 0", Event{Time: time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"year 9999", Event{Time: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)}},
		{"long field", Event{Time: testEpoch, Target: strings.Repeat("\x01", MaxFieldBytes)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := Record{Seq: 7, Event: tt.ev, Prev: [32]byte{1, 2, 3}}
			rec.Hash, _ = computeHash(nil, &rec)
			line := appendLine(nil, &rec)
			if len(line) > MaxLineBytes {
				t.Fatalf("line is %d bytes, limit %d", len(line), MaxLineBytes)
			}
			if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
				t.Fatalf("line %q is not exactly one line", line)
			}
			got, _, err := parseLine(line[:len(line)-1], nil)
			if err != nil {
				t.Fatalf("parseLine(%s): %v", line, err)
			}
			if !got.Time.Equal(rec.Time) || got.Time.Location() != time.UTC {
				t.Errorf("time = %v, want %v in UTC", got.Time, rec.Time)
			}
			got.Time, rec.Time = time.Time{}, time.Time{}
			if got != rec {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, rec)
			}
		})
	}
}

func TestParseLineRejectsNonCanonical(t *testing.T) {
	rec := Record{Seq: 1, Event: testEvent(0)}
	rec.Hash, _ = computeHash(nil, &rec)
	good := string(appendLine(nil, &rec))
	good = good[:len(good)-1]
	if _, _, err := parseLine([]byte(good), nil); err != nil {
		t.Fatalf("good line rejected: %v", err)
	}
	hashHex := good[strings.Index(good, `"hash":"`)+8 : len(good)-2]
	tests := []struct {
		name string
		line string
	}{
		{"leading space", " " + good},
		{"space after colon", strings.Replace(good, `"seq":1`, `"seq": 1`, 1)},
		{"upper-case hex", strings.Replace(good, hashHex, strings.ToUpper(hashHex), 1)},
		{"reordered keys", strings.Replace(good, `{"v":1,"seq":1,`, `{"seq":1,"v":1,`, 1)},
		{"escaped slash", strings.Replace(good, `"op":"key.sign"`, `"op":"key\/sign"`, 1)},
		{"unicode escape", strings.Replace(good, `"role":"crypto-user"`, `"role":"crypto\u002duser"`, 1)},
		{"padded time", strings.Replace(good, `.89Z`, `.890Z`, 1)},
		{"time with offset", strings.Replace(good, `05:06:07.89Z`, `05:06:07.89+00:00`, 1)},
		{"version 3", strings.Replace(good, `"v":1`, `"v":3`, 1)},
		{"missing field", strings.Replace(good, `"target":"",`, ``, 1)},
		{"extra field", strings.Replace(good, `{"v":1,`, `{"v":1,"x":0,`, 1)},
		{"duplicate field", strings.Replace(good, `"user":"user-1"`, `"user":"x","user":"user-1"`, 1)},
		{"null string", strings.Replace(good, `"target":""`, `"target":null`, 1)},
		{"short hash", strings.Replace(good, hashHex, hashHex[2:], 1)},
		{"negative seq", strings.Replace(good, `"seq":1`, `"seq":-1`, 1)},
		{"leading zero", strings.Replace(good, `"seq":1`, `"seq":01`, 1)},
		{"trailing data", good + "x"},
		{"carriage return", good + "\r"},
		{"two objects", good + good},
		{"invalid utf-8", strings.Replace(good, `user-1`, "user-\xff", 1)},
		{"not json", "hello"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.line == good {
				t.Fatal("test case did not change the line")
			}
			if _, _, err := parseLine([]byte(tt.line), nil); err == nil {
				t.Errorf("parseLine(%q) accepted a non-canonical line", tt.line)
			}
		})
	}
}

// TestHashCoversEveryField changes each field in turn, including moving
// bytes between adjacent strings, and expects a different hash each time.
func TestHashCoversEveryField(t *testing.T) {
	base := Record{Seq: 5, Event: Event{Time: testEpoch, User: "ab", Role: "c", Session: 1, Op: "o", Object: 2, Target: "t", Result: "ok"}}
	tests := []struct {
		name string
		edit func(*Record)
	}{
		{"seq", func(r *Record) { r.Seq++ }},
		{"time second", func(r *Record) { r.Time = r.Time.Add(time.Second) }},
		{"time nanosecond", func(r *Record) { r.Time = r.Time.Add(1) }},
		{"user", func(r *Record) { r.User = "ax" }},
		{"user/role boundary", func(r *Record) { r.User, r.Role = "a", "bc" }},
		{"role", func(r *Record) { r.Role = "admin" }},
		{"session", func(r *Record) { r.Session++ }},
		{"op", func(r *Record) { r.Op = "p" }},
		{"object", func(r *Record) { r.Object++ }},
		{"target", func(r *Record) { r.Target = "u" }},
		{"target/result boundary", func(r *Record) { r.Target, r.Result = "to", "k" }},
		{"result", func(r *Record) { r.Result = "CKR_GENERAL_ERROR" }},
		{"prev", func(r *Record) { r.Prev[31] ^= 1 }},
	}
	want, _ := computeHash(nil, &base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.edit(&r)
			if got, _ := computeHash(nil, &r); got == want {
				t.Errorf("hash unchanged after editing %s", tt.name)
			}
		})
	}
	zoned := base
	zoned.Time = base.Time.In(time.FixedZone("X", 3600))
	if got, _ := computeHash(nil, &zoned); got != want {
		t.Error("hash depends on the time zone of the same instant")
	}
}

func TestNormalize(t *testing.T) {
	zone := time.FixedZone("CET", 3600)
	now := func() time.Time { return testEpoch }
	tests := []struct {
		name         string
		in           Event
		wantTime     time.Time
		wantUser     string
		wantReplaced bool
	}{
		{"zero time gets now", Event{User: "a"}, testEpoch, "a", false},
		{"zone stripped", Event{Time: testEpoch.In(zone), User: "a"}, testEpoch, "a", false},
		{"monotonic stripped", Event{Time: time.Now(), User: "a"}, time.Time{}, "a", false},
		{"year 10000 replaced", Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, testEpoch, "", true},
		{"negative year replaced", Event{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}, testEpoch, "", true},
		{"invalid utf-8", Event{Time: testEpoch, User: "a\xffb"}, testEpoch, "a\uFFFDb", false},
		{"long field cut at rune", Event{Time: testEpoch, User: "x" + strings.Repeat("é", MaxFieldBytes)}, testEpoch, "x" + strings.Repeat("é", (MaxFieldBytes-1)/2), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, replaced := normalize(tt.in, now)
			if replaced != tt.wantReplaced {
				t.Errorf("replaced = %v, want %v", replaced, tt.wantReplaced)
			}
			if got.Time.Location() != time.UTC {
				t.Errorf("time %v not in UTC", got.Time)
			}
			if got.Time != got.Time.Round(0) {
				t.Errorf("time %v keeps a monotonic reading", got.Time)
			}
			if !tt.wantTime.IsZero() && !got.Time.Equal(tt.wantTime) {
				t.Errorf("time = %v, want %v", got.Time, tt.wantTime)
			}
			if got.User != tt.wantUser {
				t.Errorf("user = %q (%d bytes), want %q (%d bytes)", got.User, len(got.User), tt.wantUser, len(tt.wantUser))
			}
			if len(got.User) > MaxFieldBytes || !utf8.ValidString(got.User) {
				t.Errorf("user not cleaned: %d bytes, valid %v", len(got.User), utf8.ValidString(got.User))
			}
		})
	}
}
