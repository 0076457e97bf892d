package store

import (
	"encoding/binary"
	"fmt"
)

// Limits on what a record may hold.
const (
	MaxIDLen   = 1024    // bytes of a record id
	MaxDataLen = 1 << 20 // bytes of a record payload
)

const (
	formatV1      = 1
	flagTombstone = 1 << 0
	headerFixed   = 21 // format, kind, flags, wall, logical, node, id length
	boxOverhead   = 12 + 16
)

// Record is a record in clear, as the store's callers see it.
type Record struct {
	Kind      Kind
	ID        string
	Version   Version
	Tombstone bool
	Data      []byte // the plaintext payload; never persisted in clear
}

// Sealed is a record as it is stored and as replication ships it: metadata
// in clear, payload sealed under the masking key.
type Sealed struct {
	Kind      Kind
	ID        string
	Version   Version
	Tombstone bool
	Box       []byte // nonce || AES-256-GCM ciphertext || tag
}

// validateMeta checks what both Record and Sealed must satisfy.
func validateMeta(k Kind, id string, v Version) error {
	if !k.Valid() {
		return fmt.Errorf("invalid kind %d: %w", uint8(k), ErrMalformedRecord)
	}
	if len(id) == 0 || len(id) > MaxIDLen {
		return fmt.Errorf("id length %d not in 1..%d: %w", len(id), MaxIDLen, ErrMalformedRecord)
	}
	if v.IsZero() {
		return fmt.Errorf("zero version: %w", ErrMalformedRecord)
	}
	return nil
}

// appendHeader appends the header of a record, which is also the associated
// data of its box.
func appendHeader(dst []byte, k Kind, id string, v Version, tombstone bool) []byte {
	var flags byte
	if tombstone {
		flags |= flagTombstone
	}
	dst = append(dst, formatV1, byte(k), flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(v.Wall))
	dst = binary.BigEndian.AppendUint32(dst, v.Logical)
	dst = binary.BigEndian.AppendUint32(dst, v.Node)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(id)))
	return append(dst, id...)
}

// MarshalBinary encodes s in the versioned record format (see the package
// documentation). It fails on a record that decoding would reject.
func (s Sealed) MarshalBinary() ([]byte, error) {
	if err := validateMeta(s.Kind, s.ID, s.Version); err != nil {
		return nil, err
	}
	if len(s.Box) < boxOverhead {
		return nil, fmt.Errorf("box of %d bytes is shorter than %d: %w", len(s.Box), boxOverhead, ErrMalformedRecord)
	}
	b := make([]byte, 0, headerFixed+len(s.ID)+len(s.Box))
	b = appendHeader(b, s.Kind, s.ID, s.Version, s.Tombstone)
	return append(b, s.Box...), nil
}

// UnmarshalBinary decodes a record encoded by MarshalBinary. It copies what
// it keeps, so b may be reused. Decoding then encoding gives b back exactly.
func (s *Sealed) UnmarshalBinary(b []byte) error {
	d, hdrLen, err := decodeHeader(b)
	if err != nil {
		return err
	}
	box := b[hdrLen:]
	if len(box) < boxOverhead {
		return fmt.Errorf("box of %d bytes is shorter than %d: %w", len(box), boxOverhead, ErrMalformedRecord)
	}
	d.Box = append([]byte(nil), box...)
	*s = d
	return nil
}

// decodeHeader parses the header of an encoded record. It returns the
// record without its box, and the header length (where the box starts).
func decodeHeader(b []byte) (Sealed, int, error) {
	if len(b) < headerFixed {
		return Sealed{}, 0, fmt.Errorf("%d bytes is shorter than a header: %w", len(b), ErrMalformedRecord)
	}
	if b[0] != formatV1 {
		return Sealed{}, 0, fmt.Errorf("unknown format version %d: %w", b[0], ErrMalformedRecord)
	}
	flags := b[2]
	if flags&^flagTombstone != 0 {
		return Sealed{}, 0, fmt.Errorf("unknown flags %#x: %w", flags, ErrMalformedRecord)
	}
	n := int(binary.BigEndian.Uint16(b[19:21]))
	if len(b) < headerFixed+n {
		return Sealed{}, 0, fmt.Errorf("id of %d bytes overruns the record: %w", n, ErrMalformedRecord)
	}
	s := Sealed{
		Kind: Kind(b[1]),
		ID:   string(b[headerFixed : headerFixed+n]),
		Version: Version{
			Wall:    int64(binary.BigEndian.Uint64(b[3:11])),
			Logical: binary.BigEndian.Uint32(b[11:15]),
			Node:    binary.BigEndian.Uint32(b[15:19]),
		},
		Tombstone: flags&flagTombstone != 0,
	}
	if err := validateMeta(s.Kind, s.ID, s.Version); err != nil {
		return Sealed{}, 0, err
	}
	return s, headerFixed + n, nil
}
