package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/coffer-hsm/coffer/internal/testtool"
)

// failingReader gives some bytes, then an error: a blob that broke on the way.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("the HSM went away")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// testBlobStore is what every BlobStore must do.
func testBlobStore(t *testing.T, st BlobStore) {
	ctx := t.Context()
	const name, other = "backup-aaaaaaaaaaa", "backup-bbbbbbbbbbb"
	if _, err := st.Get(ctx, name); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("Get of a missing blob: %v, want ErrBlobNotFound", err)
	}
	blob := bytes.Repeat([]byte("sealed bytes "), 100000) // 1.3 MB
	n, err := st.Put(ctx, name, bytes.NewReader(blob))
	if err != nil || n != int64(len(blob)) {
		t.Fatalf("Put: %d, %v", n, err)
	}
	get := func(name string) []byte {
		t.Helper()
		r, err := st.Get(ctx, name)
		if err != nil {
			t.Fatalf("Get %s: %v", name, err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(get(name), blob) {
		t.Fatal("Get returned other bytes than Put stored")
	}
	// A blob that fails on the way stores nothing, and leaves the old one.
	if _, err := st.Put(ctx, name, &failingReader{n: 5000}); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	if _, err := st.Put(ctx, other, &failingReader{n: 5000}); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	if _, err := st.Get(ctx, other); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("a failed Put left a blob: %v", err)
	}
	if !bytes.Equal(get(name), blob) {
		t.Fatal("a failed Put changed the stored blob")
	}
	// Replacing, copying, deleting.
	if _, err := st.Put(ctx, name, strings.NewReader("second")); err != nil {
		t.Fatal(err)
	}
	if got := get(name); string(got) != "second" {
		t.Fatalf("after replacing: %q", got)
	}
	if n, err := copyBlob(ctx, st, name, 6, st, other); err != nil || n != 6 {
		t.Fatalf("copy: %d %v", n, err)
	}
	if got := get(other); string(got) != "second" {
		t.Fatalf("copy holds %q", got)
	}
	for _, nm := range []string{name, other} {
		if err := st.Delete(ctx, nm); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, nm); !errors.Is(err, ErrBlobNotFound) {
			t.Fatalf("after Delete: %v", err)
		}
	}
	if err := st.Delete(ctx, name); err != nil {
		t.Fatalf("Delete of a missing blob: %v", err)
	}
	// Names are backup ids: no paths.
	for _, bad := range []string{"../backup-aaaaaaaaaaa", "backup-aaaaaaaaaaa/x", "", "x"} {
		if _, err := st.Put(ctx, bad, strings.NewReader("x")); err == nil {
			t.Fatalf("Put %q accepted", bad)
		}
	}
}

func TestDirStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "us-east-1")
	st, err := NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	testBlobStore(t, st)
	// No temporary file is left behind by the failed Puts.
	left, err := os.ReadDir(dir)
	if err != nil || len(left) != 0 {
		t.Fatalf("left in the store: %v %v", left, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store directory mode %v %v", fi.Mode(), err)
	}
}

// seaweedServer is a SeaweedFS master, volume server, filer and S3
// gateway on loopback ports, with one identity.
type seaweedServer struct {
	endpoint string
	cfg      S3Config
}

const (
	weedAccessKey = "AKIACOFFERWEEDTEST01"
	weedSecretKey = "coffer-weed-test-secret-0001"
)

// startSeaweed starts `weed server` (scripts/seaweedfs.sh builds it); it
// skips when the binary is not built, or fails under COFFER_REQUIRE_TOOLS.
func startSeaweed(t *testing.T) *seaweedServer {
	t.Helper()
	script := filepath.Join("..", "..", "scripts", "seaweedfs.sh")
	args := []string{script, "--cached"}
	if testtool.Required() {
		args = args[:1] // build it if it is not cached
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", args...).Output()
	weed := strings.TrimSpace(string(out))
	if err != nil || weed == "" {
		testtool.SkipOrFail(t, "SeaweedFS is not built (run scripts/seaweedfs.sh): %v", err)
	}
	dir := t.TempDir()
	ports := freePorts(t, 8)
	conf := filepath.Join(dir, "s3.json")
	err = os.WriteFile(conf, fmt.Appendf(nil, `{"identities":[{"name":"coffer","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`,
		weedAccessKey, weedSecretKey), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir="+filepath.Join(dir, "data"),
		fmt.Sprintf("-master.port=%d", ports[0]), fmt.Sprintf("-master.port.grpc=%d", ports[1]),
		fmt.Sprintf("-volume.port=%d", ports[2]), fmt.Sprintf("-volume.port.grpc=%d", ports[3]),
		fmt.Sprintf("-filer.port=%d", ports[4]), fmt.Sprintf("-filer.port.grpc=%d", ports[5]),
		"-filer.localSocket="+filepath.Join(dir, "filer.sock"),
		"-s3", fmt.Sprintf("-s3.port=%d", ports[6]), fmt.Sprintf("-s3.port.grpc=%d", ports[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config="+conf,
		"-master.volumeSizeLimitMB=64", "-volume.max=5")
	logf, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("weed log (end):\n%s", tail(b, 4000))
		}
	})
	ws := &seaweedServer{endpoint: fmt.Sprintf("http://127.0.0.1:%d", ports[6])}
	ws.cfg = S3Config{Endpoint: ws.endpoint, Bucket: "coffer-backups", Prefix: "region/us-east-1", AccessKeyID: weedAccessKey, SecretAccessKey: weedSecretKey}
	// Ready once the bucket can be made through the S3 API.
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(ws.endpoint), UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: weedAccessKey, SecretAccessKey: weedSecretKey}, nil
		})})
	deadline := time.Now().Add(90 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := client.CreateBucket(cctx, &s3.CreateBucketInput{Bucket: aws.String(ws.cfg.Bucket)})
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("weed server exited: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("SeaweedFS's S3 gateway did not come up: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return ws
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// TestS3Store runs the store against a real S3-compatible server.
func TestS3Store(t *testing.T) {
	ws := startSeaweed(t)
	st, err := NewS3Store(ws.cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testBlobStore(t, st)

	// The prefix is where the objects are.
	if _, err := st.Put(t.Context(), "backup-ccccccccccc", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	out, err := st.client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(ws.cfg.Bucket)})
	if err != nil || len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != "region/us-east-1/backup-ccccccccccc" {
		t.Fatalf("objects %+v %v", out, err)
	}
	// Wrong credentials are refused by the server.
	bad := ws.cfg
	bad.SecretAccessKey = "not-the-secret-key-at-all"
	bst, err := NewS3Store(bad, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bst.Put(t.Context(), "backup-ddddddddddd", strings.NewReader("x")); err == nil {
		t.Fatal("a Put with the wrong secret succeeded")
	}
	if _, err := bst.Get(t.Context(), "backup-ccccccccccc"); err == nil || errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("a Get with the wrong secret: %v", err)
	}

	// The control plane with us-east-1's backups in the bucket: a backup
	// is READY once its object is there, copies go to us-west-2's
	// directory, and a cluster is made from the bucket's blob.
	t.Run("control plane", func(t *testing.T) {
		cfg := ws.cfg
		cfg.Prefix = "cp/us-east-1/"
		e, clk := newClockEnv(t, func(c *Config) { c.Regions[0].Backups.S3 = &cfg })
		cl := e.active(clk, "us-east-1a")
		b := e.backupsOf(cl.ClusterId)[0]
		obj, err := st.client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(cfg.Prefix + b.BackupId)})
		if err != nil {
			t.Fatalf("READY backup %s has no object: %v", b.BackupId, err)
		}
		blob, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil || !bytes.HasPrefix(blob, []byte(fakeBackupMagic)) {
			t.Fatalf("object %q %v", tail(blob, 64), err)
		}
		if _, err := os.Stat(e.blobPath("us-east-1", b.BackupId)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the blob is also in the default directory: %v", err)
		}
		e.must("CopyBackupToRegion", CopyBackupToRegionRequest{DestinationRegion: "us-west-2", BackupId: b.BackupId}, nil)
		e.reconcile()
		west := e.backupsIn("us-west-2", nil)
		if len(west) != 1 || west[0].BackupState != BackupReady {
			t.Fatalf("copy %+v", west)
		}
		if got, err := os.ReadFile(e.blobPath("us-west-2", west[0].BackupId)); err != nil || !bytes.Equal(got, blob) {
			t.Fatalf("copied blob differs: %v", err)
		}
		var made CreateClusterResponse
		e.must("CreateCluster", CreateClusterRequest{HsmType: "hsm1.medium", SubnetIds: []string{"subnet-0aaaaaaa"}, SourceBackupId: b.BackupId}, &made)
		if made.Cluster.State != ClusterInitialized {
			t.Fatalf("cluster from the bucket's backup %+v", made.Cluster)
		}
		// Deleted for good: the object goes.
		e.must("DeleteBackup", DeleteBackupRequest{BackupId: b.BackupId}, nil)
		clk.advance(7*24*time.Hour + time.Second)
		e.reconcile()
		if _, err := st.client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(cfg.Prefix + b.BackupId)}); !isS3NotFound(err) {
			t.Fatalf("the purged backup's object: %v, want not found", err)
		}
	})
}
