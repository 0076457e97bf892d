package audit

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one audited action.
type Event struct {
	// Time is when the action happened. Zero means "now" by the log's clock.
	// It is stored in UTC with nanosecond precision; a time whose UTC year is
	// outside 0–9999 cannot be stored and is replaced by the log's clock (with
	// a logged warning).
	Time time.Time
	// User is the authenticated username, or "" when unauthenticated.
	User string
	// Role is the user's role: "admin", "crypto-user", "appliance-user" or "".
	Role string
	// Session is the session the action ran in, 0 if none.
	Session uint64
	// Op names the action, e.g. "login", "user.create", "key.generate",
	// "key.sign", "key.delete", "key.share".
	Op string
	// Object is the key or object id acted upon, 0 if none.
	Object uint64
	// Target is another principal acted upon (e.g. the user created or the
	// user a key was shared with), "" if none.
	Target string
	// Result is "ok" or the name of the error code, e.g. "CKR_PIN_INCORRECT".
	Result string
}

// MaxFieldBytes bounds each string field of a stored record. The writer
// replaces invalid UTF-8 with U+FFFD and cuts longer values at a rune
// boundary; usernames, roles, op and error code names are far shorter.
const MaxFieldBytes = 1024

// Record is an Event as stored: numbered and chained.
type Record struct {
	Seq uint64
	Event
	Prev [32]byte // Hash of record Seq-1; zero for Seq 1
	// Hash is, for a keyed record, HMAC-SHA256 under the log's key of the
	// canonical encoding of Seq, Event and Prev; for an unkeyed one (written
	// before the log had a key, or by an older Coffer), SHA-256 of it.
	Hash  [32]byte
	Keyed bool
}

// Anchor names one record of a log: its sequence number and hash. Kept
// outside the log, it lets [Verify] detect that records were cut off the
// end. The zero Anchor names the empty log.
type Anchor struct {
	Seq  uint64
	Hash [32]byte
}

// Anchor returns the anchor naming r.
func (r *Record) Anchor() Anchor { return Anchor{Seq: r.Seq, Hash: r.Hash} }

// anchorLen is the length of an encoded Anchor.
const anchorLen = 8 + 32

// MarshalBinary encodes a: seq (u64 big-endian) | hash.
func (a Anchor) MarshalBinary() ([]byte, error) {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, anchorLen), a.Seq), a.Hash[:]...), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (a *Anchor) UnmarshalBinary(b []byte) error {
	if len(b) != anchorLen {
		return fmt.Errorf("audit: anchor of %d bytes, want %d", len(b), anchorLen)
	}
	a.Seq = binary.BigEndian.Uint64(b)
	copy(a.Hash[:], b[8:])
	return nil
}

// hashDomain separates this hash from any other SHA-256 use and versions
// the encoding; keyedDomain does the same for keyed records.
const (
	hashDomain  = "coffer-audit-v1\x00"
	keyedDomain = "coffer-audit-v2-hmac-sha256\x00"
)

// KeySize is the length of a log key.
const KeySize = 32

// keyInfo is the HKDF info deriving the log key from the masking key.
const keyInfo = "coffer audit chain v1"

// DeriveKey derives the key of the audit chain from the cluster's masking
// key (HKDF-SHA256), so every HSM of a cluster, and a cluster restored from
// its backup, can verify any of its logs; the log holds no key.
func DeriveKey(maskingKey []byte) ([]byte, error) {
	if len(maskingKey) == 0 {
		return nil, errors.New("audit: derive key: empty masking key")
	}
	k, err := hkdf.Key(sha256.New, maskingKey, nil, keyInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("audit: derive key: %w", err)
	}
	return k, nil
}

// appendCanonical appends the hashed encoding of r (everything but Hash):
// the domain tag, then fixed-width big-endian integers and strings prefixed
// with their 32-bit length, in field order. The time is Unix seconds and
// nanoseconds, so the zone and monotonic reading are not part of it.
func appendCanonical(dst []byte, r *Record) []byte {
	if r.Keyed {
		dst = append(dst, keyedDomain...)
	} else {
		dst = append(dst, hashDomain...)
	}
	dst = binary.BigEndian.AppendUint64(dst, r.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Time.Unix()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Time.Nanosecond()))
	dst = appendLenString(dst, r.User)
	dst = appendLenString(dst, r.Role)
	dst = binary.BigEndian.AppendUint64(dst, r.Session)
	dst = appendLenString(dst, r.Op)
	dst = binary.BigEndian.AppendUint64(dst, r.Object)
	dst = appendLenString(dst, r.Target)
	dst = appendLenString(dst, r.Result)
	return append(dst, r.Prev[:]...)
}

func appendLenString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// computeHash returns the hash an unkeyed r should carry, using scratch as
// a buffer.
func computeHash(scratch []byte, r *Record) ([32]byte, []byte) {
	scratch = appendCanonical(scratch[:0], r)
	return sha256.Sum256(scratch), scratch
}

// recordHash returns the hash r should carry: its MAC under mac (an
// HMAC-SHA256 of the log key) if r is keyed, else computeHash.
func recordHash(scratch []byte, r *Record, mac hash.Hash) ([32]byte, []byte) {
	if !r.Keyed {
		return computeHash(scratch, r)
	}
	scratch = appendCanonical(scratch[:0], r)
	mac.Reset()
	mac.Write(scratch)
	n := len(scratch)
	scratch = mac.Sum(scratch) // the MAC after the encoding, in the reused buffer
	var sum [32]byte
	copy(sum[:], scratch[n:])
	return sum, scratch[:n]
}

// newMAC returns the chain's MAC under key, or an error for a key of the
// wrong size.
func newMAC(key []byte) (hash.Hash, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("audit: key of %d bytes, want %d", len(key), KeySize)
	}
	return hmac.New(sha256.New, key), nil
}

// normalize makes ev storable: the time in UTC without a monotonic reading,
// each string valid UTF-8 of at most MaxFieldBytes. It reports whether the
// time had to be replaced by now.
func normalize(ev Event, now func() time.Time) (Event, bool) {
	replaced := false
	if ev.Time.IsZero() {
		ev.Time = now()
	}
	ev.Time = ev.Time.Round(0).UTC()
	if !storableTime(ev.Time) {
		ev.Time = now().Round(0).UTC()
		replaced = true
	}
	ev.User = cleanField(ev.User)
	ev.Role = cleanField(ev.Role)
	ev.Op = cleanField(ev.Op)
	ev.Target = cleanField(ev.Target)
	ev.Result = cleanField(ev.Result)
	return ev, replaced
}

// storableTime reports whether t (in UTC) round-trips through RFC 3339.
func storableTime(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// cleanField returns s as valid UTF-8 of at most MaxFieldBytes bytes. It
// does not allocate when s is already fine.
func cleanField(s string) string {
	if len(s) <= MaxFieldBytes && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxFieldBytes {
		return s
	}
	i := MaxFieldBytes
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
