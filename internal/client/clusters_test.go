package client

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFileClusters: a file names further clusters (add-cluster); a
// single-cluster file reads and writes as it did.
func TestFileClusters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cli.json")
	old := `{"hsms":["127.0.0.11:2223"],"hsm_ca_cert":"a.crt","cluster_id":"cluster-a"}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if ids := f.ClusterIDs(); !slices.Equal(ids, []string{"cluster-a"}) {
		t.Fatalf("ids of a single-cluster file: %v", ids)
	}
	f.AddCluster(ClusterEntry{ClusterID: "cluster-b", HSMs: []string{"127.0.0.21:2223"}, HSMCACert: "b.crt"})
	f.AddCluster(ClusterEntry{ClusterID: "cluster-b", HSMs: []string{"127.0.0.22:2223"}, HSMCACert: "b.crt"}) // replaces
	if err := f.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Check(); err != nil {
		t.Fatal(err)
	}
	if ids := got.ClusterIDs(); !slices.Equal(ids, []string{"cluster-a", "cluster-b"}) {
		t.Fatalf("ids: %v", ids)
	}
	b, err := got.ForCluster("cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	if b.ClusterID != "cluster-b" || !slices.Equal(b.HSMs, []string{"127.0.0.22:2223"}) || b.HSMCACert != filepath.Join(dir, "b.crt") || b.Clusters != nil {
		t.Fatalf("cluster-b: %+v", b)
	}
	a, err := got.ForCluster("cluster-a")
	if err != nil || a.HSMs[0] != "127.0.0.11:2223" || a.Clusters != nil {
		t.Fatalf("cluster-a: %+v, %v", a, err)
	}
	if _, err := got.ForCluster("cluster-c"); !errors.Is(err, ErrUnknownCluster) || !strings.Contains(err.Error(), "cluster-a, cluster-b") {
		t.Fatalf("unknown cluster: %v", err)
	}
	got.Clusters = append(got.Clusters, ClusterEntry{ClusterID: "cluster-a", HSMs: []string{"127.0.0.1:1"}, HSMCACert: "x"})
	if err := got.Check(); err == nil || !strings.Contains(err.Error(), "cluster-a is configured twice") {
		t.Fatalf("Check of a duplicate: %v", err)
	}
	got.Clusters = got.Clusters[:1]
	got.CreateObjectMinimumNodes = 2
	got.Clusters[0].CreateObjectMinimumNodes = 1
	if b, _ := got.ForCluster("cluster-b"); b.CreateObjectMinimumNodes != 1 {
		t.Errorf("cluster-b's own create_object_minimum_nodes: %d", b.CreateObjectMinimumNodes)
	}
	if a, _ := got.ForCluster("cluster-a"); a.CreateObjectMinimumNodes != 2 {
		t.Errorf("cluster-a's create_object_minimum_nodes: %d", a.CreateObjectMinimumNodes)
	}
	empty := &File{}
	empty.AddCluster(ClusterEntry{ClusterID: "cluster-z", HSMs: []string{"127.0.0.1:2"}, HSMCACert: "z"})
	if empty.ClusterID != "cluster-z" || empty.Clusters != nil {
		t.Fatalf("first cluster of an empty file: %+v", empty)
	}
}
