package controlplane

// DeleteClusterRequest is the input of DeleteCluster.
type DeleteClusterRequest struct {
	ClusterId string `json:"ClusterId"`
}

// DeleteClusterResponse is the output of DeleteCluster.
type DeleteClusterResponse struct {
	Cluster Cluster `json:"Cluster"`
}

// deleteCluster deletes a cluster without HSMs; its backups stay.
func (s *Server) deleteCluster(c *call, body []byte) (any, error) {
	var req DeleteClusterRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := checkClusterID("clusterId", req.ClusterId); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cl, err := s.liveCluster(c, req.ClusterId)
	if err != nil {
		return nil, err
	}
	if n := len(cl.HSMs); n > 0 {
		return nil, invalid("Cluster %s still has %d HSM(s); delete them first (DeleteHsm).", cl.ID, n)
	}
	cl.State, cl.StateMessage = ClusterDeleteInProgress, ""
	if err := s.saveCluster(cl); err != nil {
		return nil, err
	}
	s.log.Info("cluster deleting", "region", cl.Region, "cluster", cl.ID)
	s.wake()
	return DeleteClusterResponse{Cluster: cl.wire()}, nil
}
