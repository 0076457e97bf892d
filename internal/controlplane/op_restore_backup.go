package controlplane

import "time"

// RestoreBackupRequest is the input of RestoreBackup.
type RestoreBackupRequest struct {
	BackupId string `json:"BackupId"`
}

// RestoreBackupResponse is the output of RestoreBackup.
type RestoreBackupResponse struct {
	Backup Backup `json:"Backup"`
}

// restoreBackup takes back a DeleteBackup before the backup is gone.
func (s *Server) restoreBackup(c *call, body []byte) (any, error) {
	var req RestoreBackupRequest
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
	if b.State != BackupPendingDeletion {
		return nil, invalid("Backup %s is %s; only a backup PENDING_DELETION can be restored.", b.ID, b.State)
	}
	if !s.now().Before(b.DeleteAt) {
		return nil, invalid("Backup %s was due for deletion at %s and is being deleted.", b.ID, b.DeleteAt.UTC().Format(time.RFC3339))
	}
	// A backup the retention policy expired is expired again at the next
	// look unless the policy changed or it was made NeverExpires (CloudHSM
	// says: change the policy before restoring such a backup).
	b.State, b.DeleteAt, b.Expired = BackupReady, time.Time{}, false
	if err := s.saveBackup(b); err != nil {
		return nil, err
	}
	return RestoreBackupResponse{Backup: b.wire(c.account)}, nil
}
