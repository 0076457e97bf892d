package controlplane

// policyBackup finds the backup a resource policy ARN names (s.mu held).
// Resource policies exist for backups only, as on CloudHSM.
func (s *Server) policyBackup(c *call, arn string) (*backupRecord, error) {
	if err := required("resourceArn", arn); err != nil {
		return nil, err
	}
	m := reHsmArn.FindStringSubmatch(arn)
	if m == nil {
		return nil, invalid("1 validation error detected: Value '%s' at 'resourceArn' failed to satisfy constraint: Member must satisfy regular expression pattern (e.g. arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-abcdefghijk)", truncate(arn, 200))
	}
	region, account, kind, id := m[1], m[2], m[3], m[4]
	switch {
	case kind != "backup":
		return nil, invalid("Resource policies are supported for backups only, not for %s %s.", kind, id)
	case region != c.region.cfg.Name:
		return nil, invalid("The ARN's region %s is not the region of the request, %s.", region, c.region.cfg.Name)
	case account != c.account:
		return nil, refuse(ErrAccessDenied, "Backup %s belongs to account %s, not to the caller's.", id, account)
	}
	return s.backup(c, id)
}
