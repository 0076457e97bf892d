package controlplane

// taggable finds the tags of a cluster or backup of the region, and saves
// them (s.mu held).
func (s *Server) taggable(c *call, id string) (*[]Tag, func() error, error) {
	if err := required("resourceId", id); err != nil {
		return nil, nil, err
	}
	if err := checkPattern("resourceId", id, reResourceID, "cluster-abcdefghijk"); err != nil {
		return nil, nil, err
	}
	if reClusterID.MatchString(id) {
		cl, err := s.cluster(c, id)
		if err != nil {
			return nil, nil, err
		}
		if cl.State == ClusterDeleted {
			return nil, nil, notFound("Cluster %s is deleted.", id)
		}
		return &cl.Tags, func() error { return s.saveCluster(cl) }, nil
	}
	b, err := s.backup(c, id)
	if err != nil {
		return nil, nil, err
	}
	return &b.Tags, func() error { return s.saveBackup(b) }, nil
}
