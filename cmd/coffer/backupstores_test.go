package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-hsm/coffer/internal/controlplane"
)

func TestReadBackupStores(t *testing.T) {
	dir := t.TempDir()
	s3 := `{"us-east-1": {"s3": {"endpoint": "http://127.0.0.1:8333", "bucket": "hsm-backups", "prefix": "e/", "access_key_id": "AK", "secret_access_key": "SK"}},
		"us-west-2": {"dir": "/srv/b"}}`
	for _, c := range []struct {
		name, body string
		mode       os.FileMode
		want       string // "" accepted
	}{
		{"s3 and dir", s3, 0o600, ""},
		{"secrets open to others", s3, 0o644, "open to others"},
		{"dir open to others", `{"us-west-2": {"dir": "/srv/b"}}`, 0o644, ""},
		{"region not served", `{"eu-west-1": {"dir": "/srv/b"}}`, 0o600, "not served"},
		{"unknown field", `{"us-east-1": {"directory": "/srv/b"}}`, 0o600, "unknown field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".json")
			if err := os.WriteFile(p, []byte(c.body), c.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, c.mode)
			regions := []controlplane.Region{controlplane.DefaultRegion("us-east-1", 0), controlplane.DefaultRegion("us-west-2", 1)}
			err := readBackupStores(p, regions)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("got %v, want an error with %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "s3 and dir" && (regions[0].Backups.S3 == nil || regions[0].Backups.S3.Bucket != "hsm-backups" || regions[1].Backups.Dir != "/srv/b") {
				t.Fatalf("regions %+v", regions)
			}
		})
	}
}
