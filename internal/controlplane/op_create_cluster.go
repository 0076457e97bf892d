package controlplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// CreateClusterRequest is the input of CreateCluster.
type CreateClusterRequest struct {
	BackupRetentionPolicy *BackupRetentionPolicy `json:"BackupRetentionPolicy"`
	HsmType               string                 `json:"HsmType"`
	SourceBackupId        string                 `json:"SourceBackupId"`
	SubnetIds             []string               `json:"SubnetIds"`
	NetworkType           string                 `json:"NetworkType"`
	TagList               []Tag                  `json:"TagList"`
	Mode                  string                 `json:"Mode"`
}

// CreateClusterResponse is the output of CreateCluster.
type CreateClusterResponse struct {
	Cluster Cluster `json:"Cluster"`
}

// Backup retention (days) CloudHSM allows, and its default.
const (
	minRetentionDays     = 7
	maxRetentionDays     = 379
	defaultRetentionDays = 90
)

func (s *Server) createCluster(c *call, body []byte) (any, error) {
	var req CreateClusterRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := checkHsmType(req.HsmType); err != nil {
		return nil, err
	}
	mode, err := checkMode(req.HsmType, req.Mode)
	if err != nil {
		return nil, err
	}
	switch req.NetworkType {
	case "", "IPV4":
	case "DUALSTACK":
		return nil, invalid("NetworkType DUALSTACK is not supported: Coffer's HSMs have IPv4 addresses only.")
	default:
		return nil, invalid("NetworkType %q: want IPV4 or DUALSTACK.", truncate(req.NetworkType, 32))
	}
	retention := BackupRetentionPolicy{Type: "DAYS", Value: strconv.Itoa(defaultRetentionDays)}
	if req.BackupRetentionPolicy != nil {
		if err := checkRetention(*req.BackupRetentionPolicy); err != nil {
			return nil, err
		}
		retention = *req.BackupRetentionPolicy
	}
	if err := checkTags("tagList", req.TagList); err != nil {
		return nil, err
	}
	if len(req.SubnetIds) < 1 || len(req.SubnetIds) > 10 {
		return nil, invalid("1 validation error detected: Value at 'subnetIds' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	r := c.region
	mapping := map[string]string{}
	for _, id := range req.SubnetIds {
		if err := checkPattern("subnetIds.member", id, reSubnetID, "subnet-0aaaaaaa"); err != nil {
			return nil, err
		}
		sn, ok := r.subnets[id]
		if !ok {
			return nil, invalid("The subnet ID %s does not exist in region %s. Subnets of this region: %s.", id, r.cfg.Name, subnetList(r))
		}
		if prev, dup := mapping[sn.AZ]; dup {
			return nil, invalid("Subnets %s and %s are both in availability zone %s: give one subnet per availability zone.", prev, id, sn.AZ)
		}
		mapping[sn.AZ] = id
	}

	if req.SourceBackupId != "" {
		return s.createClusterFromBackup(c, req, mapping, retention)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := &clusterRecord{
		Region: r.cfg.Name, Account: c.account, ID: s.newID("cluster"), HsmType: req.HsmType, Mode: mode, NetworkType: "IPV4",
		State: ClusterCreateInProgress, SubnetMapping: mapping, VpcID: r.cfg.VpcID, SecurityGroup: s.newHexID("sg"),
		Created: s.now().UTC(), BackupPolicy: "DEFAULT", Retention: retention, Tags: req.TagList, HSMs: []*hsmRecord{},
		NextNodeID: 1,
	}
	if err := s.saveCluster(cl); err != nil {
		return nil, err
	}
	r.clusters[cl.ID] = cl
	s.log.Info("cluster created", "region", r.cfg.Name, "cluster", cl.ID, "subnets", req.SubnetIds)
	s.wake()
	return CreateClusterResponse{Cluster: cl.wire()}, nil
}

func checkHsmType(t string) error {
	if err := required("hsmType", t); err != nil {
		return err
	}
	if err := checkPattern("hsmType", t, reHsmType, "hsm1.medium"); err != nil {
		return err
	}
	if !slices.Contains(hsmTypes, t) {
		return invalid("HSM type %s is not supported; use one of %s.", t, strings.Join(hsmTypes, ", "))
	}
	return nil
}

// checkMode: hsm2m.medium clusters run in FIPS mode unless NON_FIPS is
// asked for; hsm1.medium has no mode.
func checkMode(hsmType, mode string) (string, error) {
	switch {
	case mode != "" && mode != "FIPS" && mode != "NON_FIPS":
		return "", invalid("Mode %q: want FIPS or NON_FIPS.", truncate(mode, 32))
	case hsmType == "hsm1.medium" && mode != "":
		return "", invalid("Mode is only available for hsm2m.medium clusters.")
	case hsmType == "hsm2m.medium" && mode == "":
		return "FIPS", nil
	}
	return mode, nil
}

func checkRetention(p BackupRetentionPolicy) error {
	if p.Type != "DAYS" {
		return invalid("BackupRetentionPolicy.Type %q: the only type is DAYS.", truncate(p.Type, 32))
	}
	n, err := strconv.Atoi(p.Value)
	if err != nil || n < minRetentionDays || n > maxRetentionDays {
		return invalid("BackupRetentionPolicy.Value %q: want a number of days from %d to %d.", truncate(p.Value, 32), minRetentionDays, maxRetentionDays)
	}
	return nil
}

func subnetList(r *regionState) string {
	var parts []string
	for _, sn := range r.cfg.Subnets {
		parts = append(parts, sn.ID+" ("+sn.AZ+")")
	}
	return strings.Join(parts, ", ")
}

// createClusterFromBackup makes a cluster from a backup of this region:
// the HSM side verifies the whole blob and prepares the cluster key
// (Provisioner.RestoreCluster); the cluster starts INITIALIZED with the
// backup's certificates, and its first HSM restores the blob. A refused
// blob makes no cluster.
func (s *Server) createClusterFromBackup(c *call, req CreateClusterRequest, mapping map[string]string, retention BackupRetentionPolicy) (any, error) {
	r := c.region
	s.mu.Lock()
	b, err := s.findBackupRef(c, req.SourceBackupId)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if b.State != BackupReady {
		s.mu.Unlock()
		return nil, invalid("Backup %s is %s; a cluster can only be made from a READY backup.", b.ID, b.State)
	}
	mode := b.Mode
	switch {
	case b.HsmType == "hsm2m.medium" && req.HsmType == "hsm1.medium":
		s.mu.Unlock()
		return nil, invalid("Backup %s is of an hsm2m.medium cluster; it cannot be restored into an hsm1.medium cluster.", b.ID)
	case req.HsmType == "hsm2m.medium" && b.HsmType != "hsm2m.medium":
		mode = "NON_FIPS"
	case req.HsmType == "hsm1.medium":
		mode = ""
	}
	if req.Mode != "" && req.Mode != mode {
		s.mu.Unlock()
		return nil, invalid("Backup %s is of a cluster in mode %s; a cluster made from it has that mode, not %s.", b.ID, modeName(mode), req.Mode)
	}
	ref := ClusterRef{Region: r.cfg.Name, ClusterID: s.newID("cluster")}
	backupID, boundID, sourceCluster, size := b.ID, b.boundID(), b.ClusterID, b.Bytes
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(c.ctx, s.cfg.BackupTimeout)
	defer cancel()
	blob, err := getSized(ctx, r.store, backupID, size)
	if errors.Is(err, ErrBlobNotFound) {
		return nil, invalid("Backup %s has no contents in the backup store of %s (it may predate backup contents, or the store lost it).", backupID, r.cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("controlplane: open backup %s: %w", backupID, err)
	}
	rc, err := s.prov.RestoreCluster(ctx, ref, boundID, blob)
	blob.Close()
	if errors.Is(err, ErrBackupRefused) || errors.Is(err, ErrBlobSize) {
		s.log.Warn("backup refused", "region", r.cfg.Name, "backup", backupID, "err", err)
		return nil, invalid("Backup %s was refused: %v", backupID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("controlplane: restore backup %s: %w", backupID, err)
	}
	undo := func() {
		if err := s.prov.RemoveCluster(context.WithoutCancel(c.ctx), ref); err != nil {
			s.log.Error("remove the HSM side of a cluster not made", "cluster", ref.ClusterID, "err", err)
		}
	}
	// The record says which cluster the backup is of and its mode; the
	// blob, authenticated by the HSM side, must say the same.
	switch {
	case rc.SourceClusterID != sourceCluster:
		undo()
		return nil, invalid("Backup %s was refused: its contents are a backup of cluster %s, not of %s.", backupID, truncate(rc.SourceClusterID, 64), sourceCluster)
	case rc.FIPS != (mode == "FIPS"):
		undo()
		return nil, invalid("Backup %s was refused: its contents say FIPS mode is %v, its record says mode %s.", backupID, rc.FIPS, modeName(mode))
	case rc.ClusterCSR == "" || rc.ClusterCertificate == "" || rc.TrustAnchor == "":
		undo()
		return nil, invalid("Backup %s was refused: it holds no cluster certificate (its cluster was not initialized).", backupID)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	cl := &clusterRecord{
		Region: r.cfg.Name, Account: c.account, ID: ref.ClusterID, HsmType: req.HsmType, Mode: mode, NetworkType: "IPV4",
		State: ClusterInitialized, SubnetMapping: mapping, VpcID: r.cfg.VpcID, SecurityGroup: s.newHexID("sg"),
		Created: now, BackupPolicy: "DEFAULT", Retention: retention, Tags: req.TagList, HSMs: []*hsmRecord{},
		NextNodeID: max(1, rc.NextNodeID), SourceBackupID: backupID, ClusterCsr: rc.ClusterCSR, ClusterCertificate: rc.ClusterCertificate,
		TrustAnchor: rc.TrustAnchor, RestoredActivated: rc.Activated, LastBackup: now,
	}
	if err := s.saveCluster(cl); err != nil {
		undo()
		return nil, err
	}
	r.clusters[cl.ID] = cl
	s.log.Info("cluster created from a backup", "region", r.cfg.Name, "cluster", cl.ID, "backup", backupID,
		"source_cluster", rc.SourceClusterID, "activated", rc.Activated)
	s.wake()
	return CreateClusterResponse{Cluster: cl.wire()}, nil
}

func modeName(m string) string {
	if m == "" {
		return "(none: hsm1.medium)"
	}
	return m
}
