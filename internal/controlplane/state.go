package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// This file: the records the control plane keeps, and their bbolt
// persistence. Every record lives in memory under Server.mu and is written
// through to the database (fsync'd by bbolt) before an API call answers.

// DBFile is the control plane's database under Config.DataDir.
const DBFile = "controlplane.db"

var (
	bucketClusters = []byte("clusters")
	bucketBackups  = []byte("backups")
)

type clusterRecord struct {
	Region         string                `json:"region"`
	Account        string                `json:"account,omitempty"` // the AWS account that owns it (see ownedBy)
	ID             string                `json:"id"`
	HsmType        string                `json:"hsm_type"`
	Mode           string                `json:"mode,omitempty"`
	NetworkType    string                `json:"network_type"`
	State          string                `json:"state"`
	StateMessage   string                `json:"state_message,omitempty"`
	SubnetMapping  map[string]string     `json:"subnet_mapping"` // AZ → subnet
	VpcID          string                `json:"vpc_id"`
	SecurityGroup  string                `json:"security_group"`
	Created        time.Time             `json:"created"`
	BackupPolicy   string                `json:"backup_policy"`
	Retention      BackupRetentionPolicy `json:"retention"`
	SourceBackupID string                `json:"source_backup_id,omitempty"`
	Tags           []Tag                 `json:"tags,omitempty"`

	ClusterCsr         string `json:"cluster_csr,omitempty"`
	HsmCertificate     string `json:"hsm_certificate,omitempty"`
	ClusterCertificate string `json:"cluster_certificate,omitempty"`
	TrustAnchor        string `json:"trust_anchor,omitempty"`
	KeyHSM             string `json:"key_hsm,omitempty"` // the HSM whose HsmCertificate is shown

	HSMs       []*hsmRecord `json:"hsms"`
	NextNodeID uint32       `json:"next_node_id"`
	MKCreated  bool         `json:"mk_created"` // a node was started with masking_key create (or restore)
	Deleted    time.Time    `json:"deleted,omitzero"`

	// LastBackup is when the newest backup of the cluster was started (or
	// the cluster initialized): the periodic backup is due BackupInterval
	// after it.
	LastBackup time.Time `json:"last_backup,omitzero"`
	// RestoredActivated: the cluster was made from the backup of an
	// activated cluster, so it is ACTIVE once its first HSM is ready.
	RestoredActivated bool `json:"restored_activated,omitempty"`
}

type hsmRecord struct {
	ID           string    `json:"id"`
	AZ           string    `json:"az"`
	SubnetID     string    `json:"subnet_id"`
	EniID        string    `json:"eni_id"`
	EniIP        string    `json:"eni_ip"`
	Port         int       `json:"port,omitempty"`
	MetricsPort  int       `json:"metrics_port,omitempty"`
	NodeID       uint32    `json:"node_id"`
	State        string    `json:"state"`
	StateMessage string    `json:"state_message,omitempty"`
	MaskingKey   string    `json:"masking_key,omitempty"` // create | clone | restore, fixed at first start
	Serving      bool      `json:"serving,omitempty"`     // its node has been ready once
	Created      time.Time `json:"created"`
	// RestoreBackup and RestoreBoundID name the backup (of the cluster's
	// region) the node of an HSM with MaskingKey "restore" starts from,
	// and the id its blob is bound to.
	RestoreBackup  string `json:"restore_backup,omitempty"`
	RestoreBoundID string `json:"restore_bound_id,omitempty"`
	// RemovalBackup is the backup taken before the HSM is removed: the
	// removal waits until it is READY or was given up.
	RemovalBackup string `json:"removal_backup,omitempty"`
}

type backupRecord struct {
	Region        string    `json:"region"`
	Account       string    `json:"account,omitempty"` // the AWS account that owns it: its cluster's
	ID            string    `json:"id"`
	ClusterID     string    `json:"cluster_id"`
	State         string    `json:"state"`
	Created       time.Time `json:"created"`
	Copied        time.Time `json:"copied,omitzero"`
	DeleteAt      time.Time `json:"delete_at,omitzero"`
	NeverExpires  bool      `json:"never_expires"`
	SourceRegion  string    `json:"source_region,omitempty"`
	SourceBackup  string    `json:"source_backup,omitempty"`
	SourceCluster string    `json:"source_cluster,omitempty"`
	HsmType       string    `json:"hsm_type"`
	Mode          string    `json:"mode,omitempty"`
	Tags          []Tag     `json:"tags,omitempty"`
	Policy        string    `json:"policy,omitempty"`

	// BoundID is the id the blob is bound to: the backup's own id, or for
	// a copy the bound id of its source (so the id of the original backup).
	// Empty in records older than backup contents: the record's id.
	BoundID string `json:"bound_id,omitempty"`
	Reason  string `json:"reason,omitempty"`  // why it was taken
	Bytes   int64  `json:"bytes,omitempty"`   // the blob's size, once READY
	Records int    `json:"records,omitempty"` // store records in it, once READY
	// Expired: the cluster's retention policy, not DeleteBackup, made it
	// PENDING_DELETION.
	Expired bool `json:"expired,omitempty"`
	// Attempts and LastError: failed tries at taking or copying it. After
	// maxBackupAttempts (or an error that cannot pass) it is given up:
	// DELETED without ever having been READY.
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// Purged: the blob was removed from the store (DELETED backups only).
	Purged bool `json:"purged,omitempty"`
}

// boundID is the id b's blob is bound to.
func (b *backupRecord) boundID() string {
	if b.BoundID != "" {
		return b.BoundID
	}
	return b.ID
}

func (c *clusterRecord) hsm(id string) *hsmRecord {
	for _, h := range c.HSMs {
		if h.ID == id {
			return h
		}
	}
	return nil
}

func (c *clusterRecord) clone() *clusterRecord {
	n := *c
	n.Tags = append([]Tag(nil), c.Tags...)
	n.SubnetMapping = make(map[string]string, len(c.SubnetMapping))
	for k, v := range c.SubnetMapping {
		n.SubnetMapping[k] = v
	}
	n.HSMs = make([]*hsmRecord, len(c.HSMs))
	for i, h := range c.HSMs {
		hc := *h
		n.HSMs[i] = &hc
	}
	return &n
}

// initialized: InitializeCluster was accepted.
func (c *clusterRecord) initialized() bool {
	switch c.State {
	case ClusterInitializeInProgress, ClusterInitialized, ClusterActive, ClusterDegraded:
		return true
	}
	return false
}

func (c *clusterRecord) ref() ClusterRef { return ClusterRef{Region: c.Region, ClusterID: c.ID} }

func key(region, id string) []byte { return []byte(region + "/" + id) }

// openDB opens (creating) the database and its buckets.
func openDB(dir string) (*bolt.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("controlplane: %s is in use by another control plane", filepath.Join(dir, DBFile))
	}
	if err != nil {
		return nil, fmt.Errorf("controlplane: open database: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketClusters, bucketBackups} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("controlplane: init database: %w", err)
	}
	return db, nil
}

// checkIDs: the ids of a record read from the database are ids. The
// Processes provisioner names directories and tool arguments after them,
// so a database edited to hold a path ("../..") or a flag must not reach
// it.
func (c *clusterRecord) checkIDs() error {
	var errs []error
	if !reClusterID.MatchString(c.ID) {
		errs = append(errs, fmt.Errorf("%q is not a cluster id", truncate(c.ID, 64)))
	}
	if !reRegion.MatchString(c.Region) {
		errs = append(errs, fmt.Errorf("%q is not a region name", truncate(c.Region, 64)))
	}
	for _, h := range c.HSMs {
		if h == nil || !reHsmID.MatchString(h.ID) {
			id := "(none)"
			if h != nil {
				id = truncate(h.ID, 64)
			}
			errs = append(errs, fmt.Errorf("%q is not an HSM id", id))
		}
	}
	for _, id := range []string{c.SourceBackupID} {
		if id != "" && !reBackupID.MatchString(id) {
			errs = append(errs, fmt.Errorf("%q is not a backup id", truncate(id, 64)))
		}
	}
	return errors.Join(errs...)
}

func (b *backupRecord) checkIDs() error {
	var errs []error
	for _, id := range []string{b.ID, b.BoundID, b.SourceBackup} {
		if (id != "" || id == b.ID) && !reBackupID.MatchString(id) {
			errs = append(errs, fmt.Errorf("%q is not a backup id", truncate(id, 64)))
		}
	}
	for _, id := range []string{b.ClusterID, b.SourceCluster} {
		if (id != "" || id == b.ClusterID) && !reClusterID.MatchString(id) {
			errs = append(errs, fmt.Errorf("%q is not a cluster id", truncate(id, 64)))
		}
	}
	for _, r := range []string{b.Region, b.SourceRegion} {
		if (r != "" || r == b.Region) && !reRegion.MatchString(r) {
			errs = append(errs, fmt.Errorf("%q is not a region name", truncate(r, 64)))
		}
	}
	return errors.Join(errs...)
}

// load reads every record into the regions' maps. Records of regions no
// longer configured are kept in the database and ignored.
func (s *Server) load() error {
	return s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketClusters).ForEach(func(k, v []byte) error {
			var c clusterRecord
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("cluster record %s: %w", k, err)
			}
			if err := c.checkIDs(); err != nil {
				return fmt.Errorf("cluster record %s: %w", k, err)
			}
			if c.Account == "" {
				c.Account = s.legacyAccount()
			}
			if r := s.regions[c.Region]; r != nil {
				r.clusters[c.ID] = &c
			} else {
				s.log.Warn("ignoring a cluster of a region not configured", "region", c.Region, "cluster", c.ID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketBackups).ForEach(func(k, v []byte) error {
			var b backupRecord
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("backup record %s: %w", k, err)
			}
			if err := b.checkIDs(); err != nil {
				return fmt.Errorf("backup record %s: %w", k, err)
			}
			if b.Account == "" {
				b.Account = s.legacyAccount()
			}
			if r := s.regions[b.Region]; r != nil {
				r.backups[b.ID] = &b
			}
			return nil
		})
	})
}

// saveCluster writes c (s.mu held).
func (s *Server) saveCluster(c *clusterRecord) error {
	return s.put(bucketClusters, key(c.Region, c.ID), c)
}

// saveBackup writes b (s.mu held).
func (s *Server) saveBackup(b *backupRecord) error {
	return s.put(bucketBackups, key(b.Region, b.ID), b)
}

func (s *Server) put(bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(k, data) })
	if err != nil {
		return fmt.Errorf("controlplane: save %s: %w", strings.SplitN(string(k), "/", 2)[1], err)
	}
	return nil
}
