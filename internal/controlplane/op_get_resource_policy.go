package controlplane

// GetResourcePolicyRequest is the input of GetResourcePolicy.
type GetResourcePolicyRequest struct {
	ResourceArn string `json:"ResourceArn"`
}

// GetResourcePolicyResponse is the output of GetResourcePolicy.
type GetResourcePolicyResponse struct {
	Policy string `json:"Policy,omitempty"`
}

func (s *Server) getResourcePolicy(c *call, body []byte) (any, error) {
	var req GetResourcePolicyRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.policyBackup(c, req.ResourceArn)
	if err != nil {
		return nil, err
	}
	return GetResourcePolicyResponse{Policy: b.Policy}, nil
}
