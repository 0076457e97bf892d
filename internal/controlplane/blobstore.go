package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/coffer-hsm/coffer/internal/durable"
)

// This file: where backup blobs are kept. Each region has one BlobStore;
// a blob is named by the id of the backup record it belongs to. The
// control plane moves blobs between the HSM side and the stores and never
// reads one: they are encrypted and authenticated by the HSM side under a
// backup key the control plane does not hold.

// BlobStore keeps the backup blobs of one region.
type BlobStore interface {
	// Put stores all of r under name, replacing any blob of that name. It
	// returns once the blob is durable; if r fails, nothing is stored.
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
	// Get opens a blob; a missing one is an error wrapping ErrBlobNotFound.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// Delete removes a blob; a missing one is not an error.
	Delete(ctx context.Context, name string) error
	// String says where the blobs are, for logs.
	String() string
}

// ErrBlobNotFound: the store has no blob of that name.
var ErrBlobNotFound = errors.New("backup blob not found")

// reBlobName: blob names are backup ids, so they never hold a path
// separator or a dot.
var reBlobName = regexp.MustCompile(`^backup-[2-7a-zA-Z]{11,16}$`)

func checkBlobName(name string) error {
	if !reBlobName.MatchString(name) {
		return fmt.Errorf("controlplane: blob name %q is not a backup id", name)
	}
	return nil
}

// ErrBlobSize: a store served a blob of another size than the one recorded
// when its backup became READY (a store edited or broken). The blob is not
// read past that size.
var ErrBlobSize = errors.New("the backup store's blob is not the size its backup recorded")

// getSized opens a blob that must be size bytes (size > 0; 0 or less: not
// known, as for records older than sizes): reading it fails with
// ErrBlobSize once it ends early or goes on past size, and never reads more
// than one byte past it. Whoever holds a store cannot make the control
// plane copy or spool more than the backup's own size.
func getSized(ctx context.Context, st BlobStore, name string, size int64) (io.ReadCloser, error) {
	rc, err := st.Get(ctx, name)
	if err != nil || size <= 0 {
		return rc, err
	}
	return &sizedReader{rc: rc, left: size, size: size}, nil
}

type sizedReader struct {
	rc         io.ReadCloser
	left, size int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.left == 0 {
		var one [1]byte
		for {
			n, err := s.rc.Read(one[:])
			switch {
			case n > 0:
				return 0, fmt.Errorf("%w: more than %d bytes", ErrBlobSize, s.size)
			case errors.Is(err, io.EOF):
				return 0, io.EOF
			case err != nil:
				return 0, err
			}
		}
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.rc.Read(p)
	s.left -= int64(n)
	if errors.Is(err, io.EOF) && s.left > 0 {
		return n, fmt.Errorf("%w: %d bytes of %d", ErrBlobSize, s.size-s.left, s.size)
	}
	if errors.Is(err, io.EOF) {
		err = nil // the next Read checks that the blob ends here
	}
	return n, err
}

func (s *sizedReader) Close() error { return s.rc.Close() }

// copyBlob copies a blob of size bytes (getSized) from one store to
// another (of another region).
func copyBlob(ctx context.Context, from BlobStore, fromName string, size int64, to BlobStore, toName string) (int64, error) {
	r, err := getSized(ctx, from, fromName, size)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return to.Put(ctx, toName, r)
}

// DirStore keeps blobs as files of one directory: the embedded default,
// DataDir/backups/<region>.
type DirStore struct {
	dir string
}

// NewDirStore makes (0700) and returns the directory store dir.
func NewDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("controlplane: backup store: %w", err)
	}
	return &DirStore{dir: dir}, nil
}

func (d *DirStore) String() string { return "directory " + d.dir }

// Put writes a temporary file, fsyncs it, renames it to name and fsyncs
// the directory: a crash leaves either the old blob or the whole new one.
func (d *DirStore) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := checkBlobName(name); err != nil {
		return 0, err
	}
	n, err := durable.WriteFrom(filepath.Join(d.dir, name), ctxReader{ctx, r}, 0o600)
	if err != nil {
		return n, fmt.Errorf("controlplane: backup store: %w", err)
	}
	return n, nil
}

func (d *DirStore) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := checkBlobName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("controlplane: %s in %s: %w", name, d, ErrBlobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("controlplane: backup store: %w", err)
	}
	return f, nil
}

func (d *DirStore) Delete(ctx context.Context, name string) error {
	if err := checkBlobName(name); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(d.dir, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("controlplane: backup store: %w", err)
	}
	if err == nil {
		if err := durable.SyncDir(d.dir); err != nil {
			return fmt.Errorf("controlplane: backup store: %w", err)
		}
	}
	return nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
