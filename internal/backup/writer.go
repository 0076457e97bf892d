package backup

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/coffer-hsm/coffer/internal/store"
)

// Writer streams one blob. Make it with NewWriter, Add exactly
// Header.Records records, then Close, which writes the trailer.
type Writer struct {
	w      *bufio.Writer
	mac    hash.Hash
	n      int64 // bytes written so far
	want   uint64
	added  uint64
	closed bool
	err    error // the first write error; every later call returns it
}

// NewWriter writes the preamble, header, sealed masking key mk and, if
// clusterKey (PKCS#8 DER) is not nil, the sealed cluster key to w.
func NewWriter(w io.Writer, backupKey []byte, h Header, mk, clusterKey []byte) (*Writer, error) {
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("backup: header: %w", err)
	}
	if len(mk) != 32 {
		return nil, fmt.Errorf("backup: masking key is %d bytes, want 32", len(mk))
	}
	if len(clusterKey) > maxBoxLen-64 {
		return nil, fmt.Errorf("backup: cluster key of %d bytes is too long", len(clusterKey))
	}
	salt := make([]byte, saltLen)
	rand.Read(salt)
	k, err := deriveKeys(backupKey, salt, h.BackupID)
	if err != nil {
		return nil, err
	}
	defer k.wipe()
	bw := &Writer{w: bufio.NewWriterSize(w, 64<<10), mac: hmac.New(sha256.New, k.mac), want: h.Records}
	pre := append([]byte(magic), formatV1)
	hdr := encodeHeader(&h, salt, k.check)
	ad := append(pre[:len(pre):len(pre)], hdr...)
	bw.write(pre)
	bw.write(hdr)
	bw.section(k.wrap.Seal(nil, nil, mk, append([]byte(adMK), ad...)))
	if clusterKey != nil {
		bw.section(k.wrap.Seal(nil, nil, clusterKey, append([]byte(adCluster), ad...)))
	} else {
		bw.section(nil)
	}
	if bw.err != nil {
		return nil, bw.err
	}
	return bw, nil
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.mac.Write(b)
	n, err := w.w.Write(b)
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("backup: write: %w", err)
	}
}

func (w *Writer) section(b []byte) {
	w.write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	w.write(b)
}

// Add writes one store record, as store.Sealed marshals it.
func (w *Writer) Add(rec store.Sealed) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("backup: Add after Close")
	}
	if w.added == w.want {
		return fmt.Errorf("backup: more records than the %d the header announced", w.want)
	}
	b, err := rec.MarshalBinary()
	if err != nil {
		return fmt.Errorf("backup: record %s %q: %w", rec.Kind, rec.ID, err)
	}
	w.section(b)
	w.added++
	return w.err
}

// Close writes the trailer and flushes. It fails if fewer records were
// added than the header announced; the blob is then unusable.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	if w.added != w.want {
		w.err = fmt.Errorf("backup: %d records added, the header announced %d", w.added, w.want)
		return w.err
	}
	total := w.n + int64(trailerLen)
	w.write(binary.BigEndian.AppendUint64([]byte(endMagic), uint64(total)))
	if w.err != nil {
		return w.err
	}
	tag := w.mac.Sum(nil)
	if _, err := w.w.Write(tag); err != nil {
		w.err = fmt.Errorf("backup: write: %w", err)
		return w.err
	}
	w.n += int64(len(tag))
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("backup: write: %w", err)
		return w.err
	}
	return nil
}

// Size is the number of bytes written so far (the whole blob after Close).
func (w *Writer) Size() int64 { return w.n }
