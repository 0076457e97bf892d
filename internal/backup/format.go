package backup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-hsm/coffer/internal/cryptobackend"
	"github.com/coffer-hsm/coffer/internal/store"
)

// Format constants (see the package documentation). Persisted: never change.
const (
	magic      = "COFFERBK"
	endMagic   = "COFFEREN"
	formatV1   = 1
	saltLen    = 32
	checkLen   = 16
	macLen     = sha256.Size
	trailerLen = len(endMagic) + 8 + macLen

	infoWrap  = "coffer backup v1 wrap\x00"
	infoMAC   = "coffer backup v1 mac\x00"
	infoCheck = "coffer backup v1 check\x00"
	adMK      = "mk\x00"
	adCluster = "cluster key\x00"

	flagFIPS      = 1 << 0
	flagActivated = 1 << 1
)

// Limits on what a blob may hold.
const (
	MaxIDLen     = 256     // bytes of a backup or cluster id
	maxPEMLen    = 1 << 20 // bytes of one PEM field
	maxHeaderLen = 4 << 20
	maxBoxLen    = 64 << 10 // the sealed MK or cluster key
	// maxRecordLen bounds one encoded store record.
	maxRecordLen = 64 + store.MaxIDLen + store.MaxDataLen + 64
)

// Header is what a blob says about itself, readable (after Open has
// authenticated it) without opening any key.
type Header struct {
	BackupID           string    // the backup id the blob is bound to
	SourceClusterID    string    // the cluster it was taken from
	Created            time.Time // when it was taken
	NodeID             uint32    // the node that made it
	MKCheck            []byte    // the masking key's fingerprint (store.MaskingKeyCheck)
	FIPS               bool
	ClusterCertificate string // PEM, with any intermediates
	TrustAnchor        string // PEM
	ClusterCSR         string // PEM
	Activated          bool   // an admin had activated the cluster
	Records            uint64 // store records in the blob
}

func (h *Header) validate() error {
	var errs []error
	if h.BackupID == "" || len(h.BackupID) > MaxIDLen {
		errs = append(errs, fmt.Errorf("backup id of %d bytes not in 1..%d", len(h.BackupID), MaxIDLen))
	}
	if len(h.SourceClusterID) > MaxIDLen {
		errs = append(errs, fmt.Errorf("source cluster id of %d bytes exceeds %d", len(h.SourceClusterID), MaxIDLen))
	}
	if len(h.MKCheck) > 64 {
		errs = append(errs, fmt.Errorf("MK check of %d bytes exceeds 64", len(h.MKCheck)))
	}
	for name, v := range map[string]string{"cluster certificate": h.ClusterCertificate, "trust anchor": h.TrustAnchor, "cluster CSR": h.ClusterCSR} {
		if len(v) > maxPEMLen {
			errs = append(errs, fmt.Errorf("%s of %d bytes exceeds %d", name, len(v), maxPEMLen))
		}
	}
	return errors.Join(errs...)
}

// keys are the keys of one blob.
type keys struct {
	wrap  cipher.AEAD
	mac   []byte
	check []byte
}

func deriveKeys(backupKey, salt []byte, backupID string) (*keys, error) {
	if len(backupKey) != KeyLen {
		return nil, fmt.Errorf("backup: backup key is %d bytes, want %d", len(backupKey), KeyLen)
	}
	wk, err := hkdf.Key(sha256.New, backupKey, salt, infoWrap+backupID, 32)
	if err != nil {
		return nil, err
	}
	defer clear(wk)
	mk, err := hkdf.Key(sha256.New, backupKey, salt, infoMAC+backupID, 32)
	if err != nil {
		return nil, err
	}
	ck, err := hkdf.Key(sha256.New, backupKey, salt, infoCheck+backupID, checkLen)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(wk)
	if err != nil {
		return nil, err
	}
	aead, err := cryptobackend.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	return &keys{wrap: aead, mac: mk, check: ck}, nil
}

func (k *keys) wipe() { clear(k.mac) }

// encodeHeader returns the header section (its length prefix included).
func encodeHeader(h *Header, salt, check []byte) []byte {
	b := make([]byte, 4, 256+len(h.ClusterCertificate)+len(h.TrustAnchor)+len(h.ClusterCSR))
	b = append(b, salt...)
	b = append(b, check...)
	b = appendStr16(b, h.BackupID)
	b = appendStr16(b, h.SourceClusterID)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Created.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, h.NodeID)
	b = appendStr16(b, string(h.MKCheck))
	var flags byte
	if h.FIPS {
		flags |= flagFIPS
	}
	if h.Activated {
		flags |= flagActivated
	}
	b = append(b, flags)
	b = appendStr32(b, h.ClusterCertificate)
	b = appendStr32(b, h.TrustAnchor)
	b = appendStr32(b, h.ClusterCSR)
	b = binary.BigEndian.AppendUint64(b, h.Records)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func appendStr16(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

func appendStr32(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

// decoder reads fields from a byte slice, remembering the first shortfall.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errors.New("field overruns the header")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) str16() string { return string(d.take(int(d.u16()))) }
func (d *decoder) str32() string { return string(d.take(int(d.u32()))) }

// rawHeader is a parsed header with what only the reader needs.
type rawHeader struct {
	Header
	salt, check []byte
	hasCluster  bool
}

// decodeHeader parses a header body (without its length prefix).
func decodeHeader(body []byte) (*rawHeader, error) {
	d := &decoder{b: body}
	var h rawHeader
	h.salt = d.take(saltLen)
	h.check = d.take(checkLen)
	h.BackupID = d.str16()
	h.SourceClusterID = d.str16()
	created := int64(d.u64())
	h.NodeID = d.u32()
	if mc := d.str16(); mc != "" {
		h.MKCheck = []byte(mc)
	}
	flags := d.u8()
	h.ClusterCertificate = d.str32()
	h.TrustAnchor = d.str32()
	h.ClusterCSR = d.str32()
	h.Records = d.u64()
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d bytes after the header's last field", len(d.b))
	}
	if flags&^(flagFIPS|flagActivated) != 0 {
		return nil, fmt.Errorf("unknown header flags %#x", flags)
	}
	h.FIPS, h.Activated = flags&flagFIPS != 0, flags&flagActivated != 0
	h.Created = time.Unix(0, created).UTC()
	if err := h.validate(); err != nil {
		return nil, err
	}
	return &h, nil
}
