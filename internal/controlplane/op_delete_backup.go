package controlplane

// DeleteBackupRequest is the input of DeleteBackup.
type DeleteBackupRequest struct {
	BackupId string `json:"BackupId"`
}

// DeleteBackupResponse is the output of DeleteBackup.
type DeleteBackupResponse struct {
	Backup Backup `json:"Backup"`
}

// deleteBackup marks a READY backup PENDING_DELETION: it can be restored
// (RestoreBackup) until its DeleteTimestamp, 7 days later.
func (s *Server) deleteBackup(c *call, body []byte) (any, error) {
	var req DeleteBackupRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := checkBackupID("backupId", req.BackupId); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.backup(c, req.BackupId)
	if err != nil {
		return nil, err
	}
	if b.State != BackupReady {
		return nil, invalid("Backup %s is %s; only a READY backup can be deleted.", b.ID, b.State)
	}
	b.State, b.DeleteAt = BackupPendingDeletion, s.now().UTC().Add(s.cfg.DeletedBackupRetention)
	if err := s.saveBackup(b); err != nil {
		return nil, err
	}
	return DeleteBackupResponse{Backup: b.wire(c.account)}, nil
}
