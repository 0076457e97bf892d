package node

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-hsm/coffer/internal/store"
)

// A replica envelope carries one sealed record from an HSM of one cluster
// to an HSM of a clone cluster (one that shares the masking key: made from
// a backup of the other, or both from one backup). The record inside is the
// store's sealed record, unchanged: key material never leaves masked form.
// The envelope binds it to the source cluster, the destination cluster the
// caller named and the time it was issued, under an HMAC-SHA256 key derived
// from the masking key with a label of its own (envelopeKeyLabel), so that
// only an HSM holding the masking key makes one and a destination takes it
// only for itself and only for replicaTTL.
//
//	version      1 byte (envelopeV1)
//	source       2-byte length, cluster id
//	destination  2-byte length, cluster id
//	issued       8 bytes, Unix nanoseconds
//	mk check     32 bytes, the source's store.MaskingKeyCheck
//	record       4-byte length, store.Sealed.MarshalBinary
//	mac          32 bytes, HMAC-SHA256(HKDF(MK, envelopeKeyLabel), all of the above)
//
// All integers are big-endian.
const (
	envelopeV1       = 1
	envelopeKeyLabel = "coffer replica envelope v1"
	envelopeMACLen   = sha256.Size
	mkCheckLen       = sha256.Size
	maxClusterIDLen  = 256
	maxEnvelopeLen   = 1 + 2 + maxClusterIDLen + 2 + maxClusterIDLen + 8 + mkCheckLen + 4 + store.MaxDataLen + store.MaxIDLen + 64 + envelopeMACLen

	// replicaTTL is how long a destination accepts an envelope after it
	// was issued: long enough for an operator's command, short enough that
	// an old snapshot of a key (from before it was made non-extractable,
	// before a share was withdrawn) cannot be replayed later.
	replicaTTL = 10 * time.Minute
	// replicaSkew is how far in the future an issue time may be (clocks
	// of two regions differ a little).
	replicaSkew = time.Minute
)

// envelope is a decoded replica envelope.
type envelope struct {
	source, destination string
	issued              time.Time
	mkCheck             []byte
	record              store.Sealed
	body                []byte // what the MAC covers
	mac                 []byte
}

var errMalformedEnvelope = errors.New("not a replica envelope")

// envelopeKey derives the envelope MAC key from the masking key.
func envelopeKey(mk []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, mk, nil, envelopeKeyLabel, 32)
}

// sealEnvelope makes an envelope of rec from source to destination.
func sealEnvelope(mk, mkCheck []byte, source, destination string, issued time.Time, rec store.Sealed) ([]byte, error) {
	if len(source) == 0 || len(source) > maxClusterIDLen || len(destination) == 0 || len(destination) > maxClusterIDLen {
		return nil, fmt.Errorf("cluster ids of 1 to %d bytes are required", maxClusterIDLen)
	}
	if len(mkCheck) != mkCheckLen {
		return nil, fmt.Errorf("masking key check of %d bytes", len(mkCheck))
	}
	raw, err := rec.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := []byte{envelopeV1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(source)))
	b = append(b, source...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(destination)))
	b = append(b, destination...)
	b = binary.BigEndian.AppendUint64(b, uint64(issued.UnixNano()))
	b = append(b, mkCheck...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
	b = append(b, raw...)
	key, err := envelopeKey(mk)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(b), nil
}

// parseEnvelope decodes an envelope without verifying its MAC.
func parseEnvelope(b []byte) (*envelope, error) {
	if len(b) > maxEnvelopeLen || len(b) < 1+envelopeMACLen || b[0] != envelopeV1 {
		return nil, errMalformedEnvelope
	}
	e := &envelope{body: b[:len(b)-envelopeMACLen], mac: b[len(b)-envelopeMACLen:]}
	r := e.body[1:]
	str := func() (string, bool) {
		if len(r) < 2 {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(r))
		if n == 0 || n > maxClusterIDLen || len(r) < 2+n {
			return "", false
		}
		s := string(r[2 : 2+n])
		r = r[2+n:]
		return s, true
	}
	var ok bool
	if e.source, ok = str(); !ok {
		return nil, errMalformedEnvelope
	}
	if e.destination, ok = str(); !ok {
		return nil, errMalformedEnvelope
	}
	if len(r) < 8+mkCheckLen+4 {
		return nil, errMalformedEnvelope
	}
	e.issued = time.Unix(0, int64(binary.BigEndian.Uint64(r)))
	e.mkCheck = r[8 : 8+mkCheckLen]
	r = r[8+mkCheckLen:]
	n := int(binary.BigEndian.Uint32(r))
	r = r[4:]
	if n != len(r) {
		return nil, errMalformedEnvelope
	}
	if err := e.record.UnmarshalBinary(r); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedEnvelope, err)
	}
	return e, nil
}

// verify checks the envelope's MAC under mk.
func (e *envelope) verify(mk []byte) (bool, error) {
	key, err := envelopeKey(mk)
	if err != nil {
		return false, err
	}
	defer clear(key)
	m := hmac.New(sha256.New, key)
	m.Write(e.body)
	return hmac.Equal(m.Sum(nil), e.mac), nil
}
