package controlplane

// This file: finding records by the ids and ARNs callers give (s.mu held).

// Every cluster and backup belongs to one AWS account, the account of the
// access key that made it (a backup: its cluster's; a copy: its source's).
// A caller of another account neither finds nor lists it: not found, as
// for an id that does not exist, so ids of other accounts are not
// confirmed either.

// ownedBy says whether account owns a record of that owner.
func ownedBy(owner, account string) bool { return owner != "" && owner == account }

// legacyAccount is the owner of records written before records named
// their account: the account of the first configured access key.
func (s *Server) legacyAccount() string {
	if len(s.cfg.Credentials) == 0 {
		return ""
	}
	return s.cfg.Credentials[0].AccountID
}

func (s *Server) cluster(c *call, id string) (*clusterRecord, error) {
	cl, ok := c.region.clusters[id]
	if !ok || !ownedBy(cl.Account, c.account) {
		return nil, notFound("Cluster %s not found in region %s.", id, c.region.cfg.Name)
	}
	return cl, nil
}

// liveCluster is a cluster that is not deleted or being deleted.
func (s *Server) liveCluster(c *call, id string) (*clusterRecord, error) {
	cl, err := s.cluster(c, id)
	if err != nil {
		return nil, err
	}
	if cl.State == ClusterDeleteInProgress || cl.State == ClusterDeleted {
		return nil, invalid("Cluster %s is %s.", cl.ID, cl.State)
	}
	return cl, nil
}

func (s *Server) backup(c *call, id string) (*backupRecord, error) {
	b, ok := c.region.backups[id]
	if !ok || b.State == BackupDeleted || !ownedBy(b.Account, c.account) {
		return nil, notFound("Backup %s not found in region %s.", id, c.region.cfg.Name)
	}
	return b, nil
}

// findBackupRef accepts a backup id or a backup ARN of this region and
// account.
func (s *Server) findBackupRef(c *call, ref string) (*backupRecord, error) {
	if m := reBackupArn.FindStringSubmatch(ref); m != nil {
		if m[1] != c.region.cfg.Name || m[2] != c.account {
			return nil, notFound("Backup %s is not a backup of this account in region %s.", ref, c.region.cfg.Name)
		}
		return s.backup(c, m[3])
	}
	if err := checkPattern("sourceBackupId", ref, reBackupID, "backup-abcdefghijk"); err != nil {
		return nil, err
	}
	return s.backup(c, ref)
}
