package audit

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Reasons a log fails verification; a [*VerifyError] wraps exactly one.
var (
	// ErrMalformed: a line is not a record in canonical form.
	ErrMalformed = errors.New("audit: malformed record")
	// ErrSequence: a record's seq is not one more than the previous one's
	// (a deleted, inserted or reordered line).
	ErrSequence = errors.New("audit: sequence break")
	// ErrChain: a record's prev is not the previous record's hash.
	ErrChain = errors.New("audit: chain break")
	// ErrHash: a record's hash does not match its contents (an edit).
	ErrHash = errors.New("audit: hash mismatch")
	// ErrTornTail: the file ends with bytes after its last newline. Verify
	// reports it; Open truncates it (see the package documentation).
	ErrTornTail = errors.New("audit: incomplete final line")
	// ErrTruncated: the log ends before the anchor's record.
	ErrTruncated = errors.New("audit: log ends before anchor")
	// ErrAnchorMismatch: the anchor's record has a different hash.
	ErrAnchorMismatch = errors.New("audit: anchor mismatch")
	// ErrKeyRequired: the log has keyed records and no key was given to
	// check their MACs.
	ErrKeyRequired = errors.New("audit: keyed log needs its key to verify")
	// ErrDowngrade: an unkeyed record after a keyed one (a log, once keyed,
	// stays keyed).
	ErrDowngrade = errors.New("audit: unkeyed record after keyed records")
)

// VerifyError reports where and why a log failed verification.
type VerifyError struct {
	// Seq is the sequence number the offending line should carry: records
	// before it verified. For ErrTruncated it is the first missing record.
	Seq uint64
	// Offset is the byte offset of the offending line in the log (for
	// ErrTruncated, the log's length).
	Offset int64
	// Reason says what was found, for people.
	Reason string
	// Err is one of ErrMalformed, ErrSequence, ErrChain, ErrHash,
	// ErrTornTail, ErrTruncated, ErrAnchorMismatch, ErrKeyRequired,
	// ErrDowngrade.
	Err error
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("%v at record %d (byte %d): %s", e.Err, e.Seq, e.Offset, e.Reason)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Reader reads a log record by record, verifying the chain as it goes.
type Reader struct {
	br         *bufio.Reader
	off        int64     // offset of the next line
	lineOff    int64     // offset of the line last returned
	head       Anchor    // last verified record
	err        error     // sticky
	mac        hash.Hash // HMAC under the log key; nil without a key
	requireKey bool      // a keyed record without mac is an error
	keyed      bool      // a keyed record was read
	unkeyed    uint64    // unkeyed records read
	scratch    []byte
}

// NewReader returns a Reader of the log in r, from its first record. It has
// no key: it checks unkeyed records fully, but of keyed records only the
// format, sequence and chain links, not their MACs. Use it to read a log;
// to verify one use NewKeyedReader or [VerifyKeyed].
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, MaxLineBytes)}
}

// NewKeyedReader returns a Reader that also checks the MAC of every keyed
// record under key (see [DeriveKey]).
func NewKeyedReader(r io.Reader, key []byte) (*Reader, error) {
	mac, err := newMAC(key)
	if err != nil {
		return nil, err
	}
	return &Reader{br: bufio.NewReaderSize(r, MaxLineBytes), mac: mac}, nil
}

// Next returns the next record once it has verified it against the ones
// before. At a clean end of the log it returns io.EOF. A break in the log
// is a [*VerifyError]; a failure to read is returned wrapped. Errors are
// sticky.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
		return Record{}, err
	}
	r.head = rec.Anchor()
	return rec, nil
}

// Head returns the anchor of the last record Next returned, or the zero
// Anchor before the first.
func (r *Reader) Head() Anchor { return r.head }

func (r *Reader) next() (Record, error) {
	want := r.head.Seq + 1
	r.lineOff = r.off
	line, err := r.br.ReadSlice('\n')
	r.off += int64(len(line))
	switch {
	case err == nil:
	case errors.Is(err, bufio.ErrBufferFull):
		return Record{}, r.fail(want, ErrMalformed, fmt.Sprintf("line longer than %d bytes", MaxLineBytes))
	case errors.Is(err, io.EOF):
		if len(line) == 0 {
			return Record{}, io.EOF
		}
		return Record{}, r.fail(want, ErrTornTail, fmt.Sprintf("%d bytes after the last newline", len(line)))
	default:
		return Record{}, fmt.Errorf("audit: read log: %w", err)
	}
	rec, scratch, err := parseLine(line[:len(line)-1], r.scratch)
	r.scratch = scratch
	if err != nil {
		return Record{}, r.fail(want, ErrMalformed, err.Error())
	}
	if rec.Seq != want {
		return Record{}, r.fail(want, ErrSequence, fmt.Sprintf("found seq %d", rec.Seq))
	}
	if rec.Prev != r.head.Hash {
		return Record{}, r.fail(want, ErrChain, fmt.Sprintf("prev %s, previous record's hash %s", short(rec.Prev), short(r.head.Hash)))
	}
	switch {
	case !rec.Keyed && r.keyed:
		return Record{}, r.fail(want, ErrDowngrade, "an unkeyed record follows keyed ones")
	case !rec.Keyed:
		r.unkeyed++
	case r.mac == nil && r.requireKey:
		return Record{}, r.fail(want, ErrKeyRequired, "the record is keyed (a MAC under the HSM's key)")
	default:
		r.keyed = true
	}
	if rec.Keyed && r.mac == nil {
		return rec, nil // read, not verified: see NewReader
	}
	var sum [32]byte
	sum, r.scratch = recordHash(r.scratch, &rec, r.mac)
	if sum != rec.Hash {
		return Record{}, r.fail(want, ErrHash, fmt.Sprintf("stored %s, computed %s", short(rec.Hash), short(sum)))
	}
	return rec, nil
}

func (r *Reader) fail(seq uint64, sentinel error, reason string) error {
	return &VerifyError{Seq: seq, Offset: r.lineOff, Reason: reason, Err: sentinel}
}

func short(h [32]byte) string { return hex.EncodeToString(h[:6]) + "…" }

// Result is what a verification found.
type Result struct {
	Records uint64 // records that verified
	// Unkeyed counts those among them that are unkeyed (plain SHA-256: an
	// older Coffer's, or written before the node had its masking key); the
	// rest carry MACs.
	Unkeyed uint64
	Head    Anchor // the last record that verified
}

// Verify reads the whole log in r and checks its chain. It returns the
// number of records that verified and the anchor of the last of them. Any
// break is a [*VerifyError]; a read failure is returned wrapped. A keyed
// record fails with ErrKeyRequired: verify a keyed log with [VerifyKeyed].
//
// A chain cannot show that records were removed from its end. If want is
// not nil the log must also contain record want.Seq with hash want.Hash
// (ErrTruncated if it ends first, ErrAnchorMismatch if the hash differs); a
// zero Anchor is satisfied by any log.
func Verify(r io.Reader, want *Anchor) (n uint64, head Anchor, err error) {
	res, _, err := scan(r, nil, want, false)
	return res.Records, res.Head, err
}

// VerifyKeyed is Verify with the log's key (see [DeriveKey]): it checks the
// MAC of every keyed record, refuses an unkeyed record after a keyed one,
// and accepts unkeyed records before the first keyed one (counted in
// Result.Unkeyed). Without an anchor a log rewritten entirely as unkeyed
// records still verifies; give the anchor the HSM kept.
func VerifyKeyed(r io.Reader, key []byte, want *Anchor) (Result, error) {
	if len(key) == 0 {
		return Result{}, errors.New("audit: verify: no key")
	}
	res, _, err := scan(r, key, want, false)
	return res, err
}

// scan verifies the log in r: with key, MACs are checked; without one, a
// keyed record fails with ErrKeyRequired. With allowTorn an incomplete final
// line ends the log instead of failing it, and its offset is returned
// (otherwise -1).
func scan(r io.Reader, key []byte, want *Anchor, allowTorn bool) (res Result, tornAt int64, err error) {
	tornAt = -1
	if want != nil && want.Seq == 0 && want.Hash != ([32]byte{}) {
		return Result{}, -1, &VerifyError{Err: ErrAnchorMismatch, Reason: "anchor at seq 0 must have a zero hash"}
	}
	rd := NewReader(r)
	rd.requireKey = true
	if key != nil {
		if rd, err = NewKeyedReader(r, key); err != nil {
			return Result{}, -1, err
		}
	}
	result := func() Result { return Result{Records: res.Records, Unkeyed: rd.unkeyed, Head: rd.Head()} }
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if ve, ok := errors.AsType[*VerifyError](err); ok && allowTorn && errors.Is(ve.Err, ErrTornTail) {
			tornAt = ve.Offset
			break
		}
		if err != nil {
			return result(), -1, err
		}
		if want != nil && rec.Seq == want.Seq && rec.Hash != want.Hash {
			out := result()
			out.Head = Anchor{Seq: rec.Seq - 1, Hash: rec.Prev}
			return out, -1, &VerifyError{
				Seq: rec.Seq, Offset: rd.lineOff, Err: ErrAnchorMismatch,
				Reason: fmt.Sprintf("record hash %s, anchor %s", short(rec.Hash), short(want.Hash)),
			}
		}
		res.Records++
	}
	res = result()
	if want != nil && res.Head.Seq < want.Seq {
		end := rd.off
		if tornAt >= 0 {
			end = tornAt
		}
		return res, -1, &VerifyError{
			Seq: res.Head.Seq + 1, Offset: end, Err: ErrTruncated,
			Reason: fmt.Sprintf("log ends at record %d, anchor is record %d", res.Head.Seq, want.Seq),
		}
	}
	return res, tornAt, nil
}
