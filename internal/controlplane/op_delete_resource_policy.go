package controlplane

// DeleteResourcePolicyRequest is the input of DeleteResourcePolicy.
type DeleteResourcePolicyRequest struct {
	ResourceArn string `json:"ResourceArn"`
}

// DeleteResourcePolicyResponse is the output of DeleteResourcePolicy: the
// policy that was removed.
type DeleteResourcePolicyResponse struct {
	ResourceArn string `json:"ResourceArn,omitempty"`
	Policy      string `json:"Policy,omitempty"`
}

func (s *Server) deleteResourcePolicy(c *call, body []byte) (any, error) {
	var req DeleteResourcePolicyRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.policyBackup(c, req.ResourceArn)
	if err != nil {
		return nil, err
	}
	old := b.Policy
	b.Policy = ""
	if err := s.saveBackup(b); err != nil {
		b.Policy = old
		return nil, err
	}
	return DeleteResourcePolicyResponse{ResourceArn: req.ResourceArn, Policy: old}, nil
}
