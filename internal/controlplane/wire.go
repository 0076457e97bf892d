package controlplane

// This file: records as the API shows them.

func (c *clusterRecord) wire() Cluster {
	out := Cluster{
		BackupPolicy: c.BackupPolicy, ClusterId: c.ID, CreateTimestamp: ts(c.Created), Hsms: []Hsm{},
		HsmType: c.HsmType, SecurityGroup: c.SecurityGroup, SourceBackupId: c.SourceBackupID, State: c.State,
		StateMessage: c.StateMessage, SubnetMapping: c.SubnetMapping, VpcId: c.VpcID, NetworkType: c.NetworkType,
		TagList: c.Tags, Mode: c.Mode,
	}
	if c.Retention.Type != "" {
		r := c.Retention
		out.BackupRetentionPolicy = &r
	}
	for _, h := range c.HSMs {
		out.Hsms = append(out.Hsms, h.wire(c))
	}
	if c.ClusterCsr != "" || c.ClusterCertificate != "" {
		// Coffer is software: no hardware, so no hardware certificate
		// signed by AWS or by a manufacturer. AwsHardwareCertificate and
		// ManufacturerHardwareCertificate (optional in the API) are left
		// out rather than filled with a certificate that is neither;
		// HsmCertificate is the HSM's own certificate on the cluster key,
		// whose public key is the CSR's.
		out.Certificates = &Certificates{
			ClusterCsr: c.ClusterCsr, HsmCertificate: c.HsmCertificate,
			ClusterCertificate: c.ClusterCertificate,
		}
	}
	return out
}

func (h *hsmRecord) wire(c *clusterRecord) Hsm {
	return Hsm{
		AvailabilityZone: h.AZ, ClusterId: c.ID, SubnetId: h.SubnetID, EniId: h.EniID, EniIp: h.EniIP,
		HsmId: h.ID, HsmType: c.HsmType, State: h.State, StateMessage: h.StateMessage,
	}
}

func (b *backupRecord) wire(account string) Backup {
	never := b.NeverExpires
	return Backup{
		BackupId: b.ID, BackupArn: backupArn(b.Region, account, b.ID), BackupState: b.State, ClusterId: b.ClusterID,
		CreateTimestamp: ts(b.Created), CopyTimestamp: ts(b.Copied), NeverExpires: &never,
		SourceRegion: b.SourceRegion, SourceBackup: b.SourceBackup, SourceCluster: b.SourceCluster,
		DeleteTimestamp: ts(b.DeleteAt), TagList: b.Tags, HsmType: b.HsmType, Mode: b.Mode,
	}
}
