package controlplane

import (
	"encoding/json"
	"unicode/utf8"
)

// PutResourcePolicyRequest is the input of PutResourcePolicy.
type PutResourcePolicyRequest struct {
	ResourceArn string `json:"ResourceArn"`
	Policy      string `json:"Policy"`
}

// PutResourcePolicyResponse is the output of PutResourcePolicy.
type PutResourcePolicyResponse struct {
	ResourceArn string `json:"ResourceArn,omitempty"`
	Policy      string `json:"Policy,omitempty"`
}

// putResourcePolicy stores a backup's sharing policy (a JSON document, at
// most 20000 characters). Coffer keeps it; there are no other accounts to
// share with on one control plane.
func (s *Server) putResourcePolicy(c *call, body []byte) (any, error) {
	var req PutResourcePolicyRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(req.Policy); n < 1 || n > 20000 {
		return nil, invalid("1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have length between 1 and 20000")
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(req.Policy), &doc); err != nil {
		return nil, invalid("Policy is not a JSON policy document: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.policyBackup(c, req.ResourceArn)
	if err != nil {
		return nil, err
	}
	old := b.Policy
	b.Policy = req.Policy
	if err := s.saveBackup(b); err != nil {
		b.Policy = old
		return nil, err
	}
	return PutResourcePolicyResponse{ResourceArn: req.ResourceArn, Policy: b.Policy}, nil
}
