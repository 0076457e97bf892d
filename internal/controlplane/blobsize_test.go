package controlplane

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// grownStore is a region's directory store in the hands of someone who
// holds it: every blob it serves goes on with extra bytes after the ones
// the HSM side wrote. served counts what callers read from it.
type grownStore struct {
	*DirStore
	extra  int64
	served atomic.Int64
}

func (g *grownStore) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := g.DirStore.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return &countingReader{r: io.MultiReader(rc, io.LimitReader(zeros{}, g.extra)), c: rc, n: &g.served}, nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingReader struct {
	r io.Reader
	c io.Closer
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.c.Close() }

// A blob store that serves more than a backup's recorded size (a hostile
// holder of the store, or a broken one) has the control plane read at most
// one buffer past that size, on every path that reads blobs: a copy to
// another region, a cluster made from the backup, and the blob a restoring
// HSM starts from. Otherwise it fills the control plane's disk (the copy's
// and the restore's temporary files) with as much as it sends.
func TestBlobReadBoundedBySize(t *testing.T) {
	const extra = 64 << 20
	var east *grownStore
	e, clk := newClockEnv(t, func(c *Config) {
		d, err := NewDirStore(filepath.Join(c.DataDir, "backups", "us-east-1"))
		if err != nil {
			t.Fatal(err)
		}
		east = &grownStore{DirStore: d, extra: extra}
		c.Regions[0].Backups.Store = east
		c.BackupTimeout = 20 * time.Second
	})
	cl := e.active(clk, "us-east-1a")
	src := e.backupsOf(cl.ClusterId)[0]
	e.s.mu.Lock()
	size := e.s.regions["us-east-1"].backups[src.BackupId].Bytes
	e.s.mu.Unlock()
	if size <= 0 {
		t.Fatalf("backup of %d bytes", size)
	}
	bound := size + 64<<10

	east.served.Store(0)
	e.must("CopyBackupToRegion", CopyBackupToRegionRequest{DestinationRegion: "us-west-2", BackupId: src.BackupId}, nil)
	e.reconcile()
	if n := east.served.Load(); n > bound {
		t.Errorf("a copy read %d bytes of a %d-byte backup", n, size)
	}
	if west := e.backupsIn("us-west-2", nil); len(west) != 1 || west[0].BackupState == BackupReady {
		t.Errorf("copy of a grown blob %+v", west)
	}

	east.served.Store(0)
	err := e.call("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: src.BackupId}, nil)
	if n := east.served.Load(); n > bound {
		t.Errorf("a cluster made from a backup read %d bytes of a %d-byte backup", n, size)
	}
	wantErr(t, err, "CloudHsmInvalidRequestException")

	east.served.Store(0)
	rc, gerr := restoreOpener(east, src.BackupId, size)(t.Context())
	if gerr != nil {
		t.Fatal(gerr)
	}
	_, rerr := io.Copy(io.Discard, rc)
	rc.Close()
	if n := east.served.Load(); n > bound || rerr == nil {
		t.Errorf("a restoring HSM's blob: read %d bytes of a %d-byte backup, error %v", n, size, rerr)
	}
}

// getSized gives a blob of exactly its size whole, and refuses one shorter
// or longer.
func TestGetSized(t *testing.T) {
	d, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const name = "backup-abcdefghijk"
	if _, err := d.Put(t.Context(), name, strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size int64
		ok   bool
	}{{10, true}, {0, true}, {9, false}, {11, false}, {1, false}} {
		rc, err := getSized(t.Context(), d, name, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBlobSize)) || (tc.ok && string(b) != "0123456789") ||
			int64(len(b)) > max(tc.size, 10) {
			t.Errorf("size %d: %q, %v", tc.size, b, err)
		}
	}
}
