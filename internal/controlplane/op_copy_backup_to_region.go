package controlplane

// CopyBackupToRegionRequest is the input of CopyBackupToRegion.
type CopyBackupToRegionRequest struct {
	DestinationRegion string `json:"DestinationRegion"`
	BackupId          string `json:"BackupId"`
	TagList           []Tag  `json:"TagList"`
}

// CopyBackupToRegionResponse is the output of CopyBackupToRegion.
type CopyBackupToRegionResponse struct {
	DestinationBackup DestinationBackup `json:"DestinationBackup"`
}

// copyBackupToRegion starts a copy of a READY backup in another region the
// control plane serves; the copy is CREATE_IN_PROGRESS until the
// reconciler finishes it.
func (s *Server) copyBackupToRegion(c *call, body []byte) (any, error) {
	var req CopyBackupToRegionRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := required("destinationRegion", req.DestinationRegion); err != nil {
		return nil, err
	}
	if err := checkPattern("destinationRegion", req.DestinationRegion, reRegion, "us-west-2"); err != nil {
		return nil, err
	}
	if err := checkBackupID("backupId", req.BackupId); err != nil {
		return nil, err
	}
	if err := checkTags("tagList", req.TagList); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dst, ok := s.regions[req.DestinationRegion]
	switch {
	case !ok:
		return nil, invalid("Region %s is not served by this control plane.", req.DestinationRegion)
	case dst == c.region:
		return nil, invalid("The destination region %s is the backup's own region.", req.DestinationRegion)
	}
	b, err := s.backup(c, req.BackupId)
	if err != nil {
		return nil, err
	}
	if b.State != BackupReady {
		return nil, invalid("Backup %s is %s; only a READY backup can be copied.", b.ID, b.State)
	}
	// The copy belongs to no cluster of its region: no retention policy
	// applies to it (CloudHSM). Without TagList it gets the source's tags.
	tags := req.TagList
	if tags == nil {
		tags = append([]Tag(nil), b.Tags...)
	}
	cp := &backupRecord{
		Region: dst.cfg.Name, Account: b.Account, ID: s.newID("backup"), BoundID: b.boundID(), ClusterID: b.ClusterID, State: BackupCreateInProgress,
		Created: b.Created, Copied: s.now().UTC(), SourceRegion: c.region.cfg.Name, SourceBackup: b.ID, SourceCluster: b.ClusterID,
		HsmType: b.HsmType, Mode: b.Mode, Tags: tags, Reason: reasonCopy,
	}
	if err := s.saveBackup(cp); err != nil {
		return nil, err
	}
	dst.backups[cp.ID] = cp
	s.log.Info("backup copy started", "backup", b.ID, "to", dst.cfg.Name, "copy", cp.ID)
	s.wake()
	// CreateTimestamp is the source backup's, as CloudHSM answers.
	return CopyBackupToRegionResponse{DestinationBackup: DestinationBackup{
		CreateTimestamp: ts(b.Created), SourceRegion: cp.SourceRegion, SourceBackup: cp.SourceBackup, SourceCluster: cp.SourceCluster,
	}}, nil
}
