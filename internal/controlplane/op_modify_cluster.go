package controlplane

// ModifyClusterRequest is the input of ModifyCluster.
type ModifyClusterRequest struct {
	HsmType               string                 `json:"HsmType"`
	BackupRetentionPolicy *BackupRetentionPolicy `json:"BackupRetentionPolicy"`
	ClusterId             string                 `json:"ClusterId"`
}

// ModifyClusterResponse is the output of ModifyCluster.
type ModifyClusterResponse struct {
	Cluster Cluster `json:"Cluster"`
}

// modifyCluster changes the backup retention policy or the HSM type. Every
// HSM type runs the same Coffer node, so a type change takes effect at once
// (CloudHSM migrates hsm1.medium to hsm2m.medium HSM by HSM).
func (s *Server) modifyCluster(c *call, body []byte) (any, error) {
	var req ModifyClusterRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := checkClusterID("clusterId", req.ClusterId); err != nil {
		return nil, err
	}
	if req.HsmType == "" && req.BackupRetentionPolicy == nil {
		return nil, invalid("Give HsmType or BackupRetentionPolicy to modify.")
	}
	if req.HsmType != "" {
		if err := checkHsmType(req.HsmType); err != nil {
			return nil, err
		}
	}
	if req.BackupRetentionPolicy != nil {
		if err := checkRetention(*req.BackupRetentionPolicy); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, err := s.liveCluster(c, req.ClusterId)
	if err != nil {
		return nil, err
	}
	if req.HsmType != "" && req.HsmType != cl.HsmType {
		if cl.HsmType == "hsm2m.medium" {
			return nil, invalid("Cluster %s is hsm2m.medium: an HSM type can only be changed from hsm1.medium to hsm2m.medium.", cl.ID)
		}
		cl.HsmType, cl.Mode = req.HsmType, "NON_FIPS"
	}
	if req.BackupRetentionPolicy != nil {
		cl.Retention = *req.BackupRetentionPolicy
	}
	if err := s.saveCluster(cl); err != nil {
		return nil, err
	}
	return ModifyClusterResponse{Cluster: cl.wire()}, nil
}
