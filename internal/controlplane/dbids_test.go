package controlplane

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A database record whose ids are not ids (a path such as "../..": the
// Processes provisioner makes, writes and removes directories named by
// the region, cluster and HSM ids) is refused when the control plane
// opens the database: whoever can write the database file must not steer
// it to files outside its HSM side.
func TestLoadRefusesRecordIDs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bucket []byte
		edit   func(cl *clusterRecord, b *backupRecord)
	}{
		{"cluster id", bucketClusters, func(cl *clusterRecord, _ *backupRecord) { cl.ID = "../../../tmp/x" }},
		{"hsm id", bucketClusters, func(cl *clusterRecord, _ *backupRecord) {
			cl.HSMs = []*hsmRecord{{ID: "../../../etc", AZ: "us-east-1a", State: HsmActive}}
		}},
		{"backup id", bucketBackups, func(_ *clusterRecord, b *backupRecord) { b.ID = "backup-../../x" }},
		{"backup's cluster id", bucketBackups, func(_ *clusterRecord, b *backupRecord) { b.ClusterID = "../x" }},
		{"bound id", bucketBackups, func(_ *clusterRecord, b *backupRecord) { b.BoundID = "-x\n" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			cl := e.createCluster()
			e.close()
			db, err := bolt.Open(filepath.Join(e.dir, DBFile), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				crec := &clusterRecord{}
				v := tx.Bucket(bucketClusters).Get(key("us-east-1", cl.ClusterId))
				if err := json.Unmarshal(v, crec); err != nil {
					return err
				}
				brec := &backupRecord{Region: "us-east-1", Account: testCred.AccountID, ID: "backup-abcdefghijk", BoundID: "backup-abcdefghijk",
					ClusterID: cl.ClusterId, State: BackupReady, HsmType: "hsm1.medium"}
				tc.edit(crec, brec)
				var rec any = crec
				k := key(crec.Region, crec.ID)
				if string(tc.bucket) == string(bucketBackups) {
					rec, k = brec, key(brec.Region, brec.ID)
				}
				data, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				return tx.Bucket(tc.bucket).Put(k, data)
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(testConfig(e.dir, e.prov))
			if s != nil {
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "not a") {
				t.Fatalf("opening a database with a record of bad ids: %v", err)
			}
		})
	}
}
