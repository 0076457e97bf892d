package controlplane

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-hsm/coffer/internal/testtool"
)

// TestBoto3 drives the API with boto3 (Debian python3-boto3): every kind
// of operation, pagination, and each error type for bad input.
func TestBoto3(t *testing.T) {
	if err := exec.Command("python3", "-c", "import boto3").Run(); err != nil {
		testtool.SkipOrFail(t, "python3 with boto3 is not installed (apt-get install python3-boto3)")
	}
	testtool.Require(t, "openssl")
	cfg := testConfig(t.TempDir(), newFakeProv())
	cfg.ReconcileInterval = 20 * time.Millisecond
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
		s.Close()
	})

	cmdCtx, stop := context.WithTimeout(t.Context(), 2*time.Minute)
	defer stop()
	cmd := exec.CommandContext(cmdCtx, "python3", "testdata/boto3_walk.py")
	cmd.Env = append(cmd.Environ(), "COFFER_ENDPOINT="+srv.URL, "AWS_ACCESS_KEY_ID="+testCred.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+testCred.SecretAccessKey, "WORK="+t.TempDir(), "ACCOUNT="+testCred.AccountID,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1")
	out, err := cmd.CombinedOutput()
	t.Logf("boto3:\n%s", out)
	if err != nil {
		t.Fatalf("boto3 walk: %v", err)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(out)), "OK") {
		t.Fatal("the boto3 walk did not finish")
	}
}
