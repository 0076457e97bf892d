package controlplane

// ModifyBackupAttributesRequest is the input of ModifyBackupAttributes.
type ModifyBackupAttributesRequest struct {
	BackupId     string `json:"BackupId"`
	NeverExpires *bool  `json:"NeverExpires"`
}

// ModifyBackupAttributesResponse is the output of ModifyBackupAttributes.
type ModifyBackupAttributesResponse struct {
	Backup Backup `json:"Backup"`
}

// modifyBackupAttributes sets NeverExpires: such a backup is kept whatever
// the cluster's retention policy.
func (s *Server) modifyBackupAttributes(c *call, body []byte) (any, error) {
	var req ModifyBackupAttributesRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := checkBackupID("backupId", req.BackupId); err != nil {
		return nil, err
	}
	if req.NeverExpires == nil {
		return nil, invalid("1 validation error detected: Value null at 'neverExpires' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.backup(c, req.BackupId)
	if err != nil {
		return nil, err
	}
	b.NeverExpires = *req.NeverExpires
	if err := s.saveBackup(b); err != nil {
		return nil, err
	}
	return ModifyBackupAttributesResponse{Backup: b.wire(c.account)}, nil
}
