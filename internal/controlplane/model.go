package controlplane

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// This file: the shapes of the cloudhsmv2 model on the wire (AWS JSON 1.1).
// Field names are the model's; omitempty follows what the service leaves out.

// Timestamp is an AWS JSON timestamp: seconds since the epoch, as a number
// with millisecond precision.
type Timestamp time.Time

func (t Timestamp) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
		return invalid("timestamp out of range")
	}
	// The API's timestamps have millisecond precision: round to it, so a
	// value that float64 cannot hold exactly (100000000.8 is
	// 100000000.7999999970) keeps its millisecond.
	sec, frac := math.Modf(f)
	*t = Timestamp(time.Unix(int64(sec), int64(math.Round(frac*1e3))*1e6).UTC())
	return nil
}

func ts(t time.Time) *Timestamp {
	if t.IsZero() {
		return nil
	}
	v := Timestamp(t)
	return &v
}

// Tag is a resource tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// Certificates of a cluster.
type Certificates struct {
	ClusterCsr                      string `json:"ClusterCsr,omitempty"`
	HsmCertificate                  string `json:"HsmCertificate,omitempty"`
	AwsHardwareCertificate          string `json:"AwsHardwareCertificate,omitempty"`
	ManufacturerHardwareCertificate string `json:"ManufacturerHardwareCertificate,omitempty"`
	ClusterCertificate              string `json:"ClusterCertificate,omitempty"`
}

// BackupRetentionPolicy says how long backups are kept.
type BackupRetentionPolicy struct {
	Type  string `json:"Type,omitempty"`
	Value string `json:"Value,omitempty"`
}

// Hsm is an HSM as DescribeClusters shows it.
type Hsm struct {
	AvailabilityZone string `json:"AvailabilityZone,omitempty"`
	ClusterId        string `json:"ClusterId,omitempty"`
	SubnetId         string `json:"SubnetId,omitempty"`
	EniId            string `json:"EniId,omitempty"`
	EniIp            string `json:"EniIp,omitempty"`
	HsmId            string `json:"HsmId"`
	HsmType          string `json:"HsmType,omitempty"`
	State            string `json:"State,omitempty"`
	StateMessage     string `json:"StateMessage,omitempty"`
}

// Cluster is a cluster as the API shows it.
type Cluster struct {
	BackupPolicy          string                 `json:"BackupPolicy,omitempty"`
	BackupRetentionPolicy *BackupRetentionPolicy `json:"BackupRetentionPolicy,omitempty"`
	ClusterId             string                 `json:"ClusterId,omitempty"`
	CreateTimestamp       *Timestamp             `json:"CreateTimestamp,omitempty"`
	Hsms                  []Hsm                  `json:"Hsms"`
	HsmType               string                 `json:"HsmType,omitempty"`
	PreCoPassword         string                 `json:"PreCoPassword,omitempty"`
	SecurityGroup         string                 `json:"SecurityGroup,omitempty"`
	SourceBackupId        string                 `json:"SourceBackupId,omitempty"`
	State                 string                 `json:"State,omitempty"`
	StateMessage          string                 `json:"StateMessage,omitempty"`
	SubnetMapping         map[string]string      `json:"SubnetMapping,omitempty"`
	VpcId                 string                 `json:"VpcId,omitempty"`
	NetworkType           string                 `json:"NetworkType,omitempty"`
	Certificates          *Certificates          `json:"Certificates,omitempty"`
	TagList               []Tag                  `json:"TagList,omitempty"`
	Mode                  string                 `json:"Mode,omitempty"`
}

// Backup is a backup as the API shows it.
type Backup struct {
	BackupId        string     `json:"BackupId"`
	BackupArn       string     `json:"BackupArn,omitempty"`
	BackupState     string     `json:"BackupState,omitempty"`
	ClusterId       string     `json:"ClusterId,omitempty"`
	CreateTimestamp *Timestamp `json:"CreateTimestamp,omitempty"`
	CopyTimestamp   *Timestamp `json:"CopyTimestamp,omitempty"`
	NeverExpires    *bool      `json:"NeverExpires,omitempty"`
	SourceRegion    string     `json:"SourceRegion,omitempty"`
	SourceBackup    string     `json:"SourceBackup,omitempty"`
	SourceCluster   string     `json:"SourceCluster,omitempty"`
	DeleteTimestamp *Timestamp `json:"DeleteTimestamp,omitempty"`
	TagList         []Tag      `json:"TagList,omitempty"`
	HsmType         string     `json:"HsmType,omitempty"`
	Mode            string     `json:"Mode,omitempty"`
}

// DestinationBackup is CopyBackupToRegion's answer.
type DestinationBackup struct {
	CreateTimestamp *Timestamp `json:"CreateTimestamp,omitempty"`
	SourceRegion    string     `json:"SourceRegion,omitempty"`
	SourceBackup    string     `json:"SourceBackup,omitempty"`
	SourceCluster   string     `json:"SourceCluster,omitempty"`
}

// States of the model.
const (
	ClusterCreateInProgress     = "CREATE_IN_PROGRESS"
	ClusterUninitialized        = "UNINITIALIZED"
	ClusterInitializeInProgress = "INITIALIZE_IN_PROGRESS"
	ClusterInitialized          = "INITIALIZED"
	ClusterActive               = "ACTIVE"
	ClusterUpdateInProgress     = "UPDATE_IN_PROGRESS"
	ClusterModifyInProgress     = "MODIFY_IN_PROGRESS"
	ClusterRollbackInProgress   = "ROLLBACK_IN_PROGRESS"
	ClusterDeleteInProgress     = "DELETE_IN_PROGRESS"
	ClusterDeleted              = "DELETED"
	ClusterDegraded             = "DEGRADED"

	HsmCreateInProgress = "CREATE_IN_PROGRESS"
	HsmActive           = "ACTIVE"
	HsmDegraded         = "DEGRADED"
	HsmDeleteInProgress = "DELETE_IN_PROGRESS"
	HsmDeleted          = "DELETED"

	BackupCreateInProgress = "CREATE_IN_PROGRESS"
	BackupReady            = "READY"
	BackupDeleted          = "DELETED"
	BackupPendingDeletion  = "PENDING_DELETION"
)

var (
	clusterStates = []string{ClusterCreateInProgress, ClusterUninitialized, ClusterInitializeInProgress, ClusterInitialized,
		ClusterActive, ClusterUpdateInProgress, ClusterModifyInProgress, ClusterRollbackInProgress, ClusterDeleteInProgress,
		ClusterDeleted, ClusterDegraded}
	backupStates = []string{BackupCreateInProgress, BackupReady, BackupDeleted, BackupPendingDeletion}
)
