package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/coffer-hsm/coffer/internal/store"
)

// Backup is a blob Open verified: its header, its masking key and cluster
// key, and its records (read again by Records).
type Backup struct {
	Header Header

	r          io.ReaderAt
	size       int64
	pre        []byte // preamble and header section, as authenticated
	macKey     []byte
	mk         []byte
	clusterKey []byte // PKCS#8 DER; nil if the blob has none
}

// Open verifies the whole blob of size bytes in r as the backup boundID
// under backupKey: that it is a backup, bound to boundID, made with that
// key, complete, and unchanged in every byte. Nothing of it is returned
// otherwise. A refused blob gives a *RefusedError.
func Open(r io.ReaderAt, size int64, backupKey []byte, boundID string) (*Backup, error) {
	if len(backupKey) != KeyLen {
		return nil, fmt.Errorf("backup: backup key is %d bytes, want %d", len(backupKey), KeyLen)
	}
	pl := int64(len(magic) + 1)
	head := make([]byte, min(size, pl+4))
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("backup: read: %w", err)
	}
	n := min(len(head), len(magic))
	if !bytes.Equal(head[:n], []byte(magic)[:n]) {
		return nil, refuse(NotABackup, "the data does not start with %q", magic)
	}
	if size < pl+4 {
		return nil, refuse(Truncated, "%d bytes end inside the preamble", size)
	}
	if v := head[len(magic)]; v != formatV1 {
		return nil, refuse(NotABackup, "format version %d is not one this Coffer reads (it reads %d)", v, formatV1)
	}
	hl := int64(binary.BigEndian.Uint32(head[pl:]))
	if hl > maxHeaderLen {
		return nil, refuse(Edited, "header length %d exceeds %d", hl, maxHeaderLen)
	}
	hdrEnd := pl + 4 + hl
	if size < hdrEnd {
		return nil, refuse(Truncated, "%d bytes end inside the %d-byte header", size, hl)
	}
	pre := make([]byte, hdrEnd)
	if _, err := r.ReadAt(pre, 0); err != nil {
		return nil, fmt.Errorf("backup: read: %w", err)
	}
	rh, err := decodeHeader(pre[pl+4:])
	if err != nil {
		return nil, refuse(Edited, "header: %v", err)
	}
	if rh.BackupID != boundID {
		return nil, refuse(OtherBackup, "the blob is bound to backup %q, not %q (swapped or replayed)", rh.BackupID, boundID)
	}
	k, err := deriveKeys(backupKey, rh.salt, boundID)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	if subtle.ConstantTimeCompare(k.check, rh.check) != 1 {
		return nil, refuse(WrongKey, "backup %s was made under another backup key than this one", boundID)
	}
	if size < hdrEnd+8+int64(trailerLen) {
		return nil, refuse(Truncated, "%d bytes end before the blob's trailer", size)
	}
	tr := make([]byte, trailerLen)
	if _, err := r.ReadAt(tr, size-int64(trailerLen)); err != nil {
		return nil, fmt.Errorf("backup: read: %w", err)
	}
	if !bytes.Equal(tr[:len(endMagic)], []byte(endMagic)) {
		return nil, refuse(Truncated, "no end marker in the last bytes: the blob was cut short at %d bytes (or bytes were appended)", size)
	}
	switch total := int64(binary.BigEndian.Uint64(tr[len(endMagic):])); {
	case total > size:
		return nil, refuse(Truncated, "%d of the blob's %d bytes", size, total)
	case total < size:
		return nil, refuse(Edited, "the trailer says %d bytes, the blob has %d", total, size)
	}
	// One pass over the bytes for the tag, then the structure: no field
	// beyond the header is parsed before the whole blob is authenticated.
	m := hmac.New(sha256.New, k.mac)
	if _, err := io.Copy(m, io.NewSectionReader(r, 0, size-macLen)); err != nil {
		return nil, fmt.Errorf("backup: read: %w", err)
	}
	if !hmac.Equal(m.Sum(nil), tr[len(tr)-macLen:]) {
		return nil, refuse(Edited, "the authentication tag does not match: bytes of backup %s were changed", boundID)
	}
	b := &Backup{Header: rh.Header, r: r, size: size, pre: pre, macKey: bytes.Clone(k.mac)}
	var mkBox, ckBox []byte
	err = b.walk(context.Background(), func(mk, ck []byte) { mkBox, ckBox = mk, ck }, nil)
	if err != nil {
		b.Wipe()
		return nil, err
	}
	ad := append([]byte(adMK), pre...)
	if b.mk, err = k.wrap.Open(nil, nil, mkBox, ad); err != nil || len(b.mk) != 32 {
		b.Wipe()
		return nil, refuse(Edited, "the masking key does not open")
	}
	if len(ckBox) != 0 {
		ad = append([]byte(adCluster), pre...)
		if b.clusterKey, err = k.wrap.Open(nil, nil, ckBox, ad); err != nil {
			b.Wipe()
			return nil, refuse(Edited, "the cluster key does not open")
		}
	}
	return b, nil
}

// walk reads the blob from the start, hashing what it reads, and parses
// every section: it hands the sealed key sections to keys (if set) and
// each record to fn (if set). Bytes that differ from those Open
// authenticated give Edited.
func (b *Backup) walk(ctx context.Context, keys func(mk, ck []byte), fn func(store.Sealed) error) error {
	changed := func(what string, args ...any) error {
		return refuse(Edited, "changed while being read ("+what+")", args...)
	}
	m := hmac.New(sha256.New, b.macKey)
	br := bufio.NewReaderSize(io.TeeReader(io.NewSectionReader(b.r, 0, b.size-macLen), m), 64<<10)
	read := func(n int64) ([]byte, error) {
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	section := func(limit uint32) ([]byte, error) {
		l, err := read(4)
		if err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(l)
		if n > limit {
			return nil, fmt.Errorf("section of %d bytes exceeds %d", n, limit)
		}
		return read(int64(n))
	}
	pre, err := read(int64(len(b.pre)))
	if err != nil || !bytes.Equal(pre, b.pre) {
		return changed("header")
	}
	mk, err := section(maxBoxLen)
	if err != nil {
		return changed("masking key: %v", err)
	}
	ck, err := section(maxBoxLen)
	if err != nil {
		return changed("cluster key: %v", err)
	}
	if keys != nil {
		keys(mk, ck)
	}
	for i := uint64(0); i < b.Header.Records; i++ {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		raw, err := section(maxRecordLen)
		if err != nil {
			return changed("record %d: %v", i, err)
		}
		var rec store.Sealed
		if err := rec.UnmarshalBinary(raw); err != nil {
			return refuse(Edited, "record %d: %v", i, err)
		}
		if fn != nil {
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	end, err := read(int64(len(endMagic) + 8))
	if err != nil || !bytes.Equal(end[:len(endMagic)], []byte(endMagic)) {
		return refuse(Edited, "the records do not end where the trailer starts")
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return refuse(Edited, "bytes between the last record and the trailer")
	}
	tag := make([]byte, macLen)
	if _, err := b.r.ReadAt(tag, b.size-macLen); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("backup: read: %w", err)
	}
	if !hmac.Equal(m.Sum(nil), tag) {
		return changed("authentication tag")
	}
	return nil
}

// Records calls fn with every record of the blob in order, reading it
// again. It returns fn's first error as is. If the bytes changed since
// Open it fails (Edited) once it notices, at the latest after the last
// record: apply records somewhere temporary and keep them only when
// Records returns nil.
func (b *Backup) Records(ctx context.Context, fn func(store.Sealed) error) error {
	return b.walk(ctx, nil, fn)
}

// MaskingKey returns a copy of the blob's masking key; the caller zeroes it.
func (b *Backup) MaskingKey() []byte { return bytes.Clone(b.mk) }

// ClusterKey returns a copy of the blob's cluster key (PKCS#8 DER), nil if
// it holds none; the caller zeroes it.
func (b *Backup) ClusterKey() []byte { return bytes.Clone(b.clusterKey) }

// Wipe zeroes the keys b holds.
func (b *Backup) Wipe() {
	clear(b.mk)
	clear(b.clusterKey)
	clear(b.macKey)
}
