package controlplane

// TagResourceRequest is the input of TagResource.
type TagResourceRequest struct {
	ResourceId string `json:"ResourceId"`
	TagList    []Tag  `json:"TagList"`
}

// TagResourceResponse is the (empty) output of TagResource.
type TagResourceResponse struct{}

// maxTags is how many tags a resource may have.
const maxTags = 50

func (s *Server) tagResource(c *call, body []byte) (any, error) {
	var req TagResourceRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.TagList) == 0 {
		return nil, invalid("1 validation error detected: Value at 'tagList' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if err := checkTags("tagList", req.TagList); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tags, save, err := s.taggable(c, req.ResourceId)
	if err != nil {
		return nil, err
	}
	merged := mergeTags(*tags, req.TagList)
	if len(merged) > maxTags {
		return nil, refuse(ErrLimitExceeded, "Resource %s would have %d tags; at most %d are allowed.", req.ResourceId, len(merged), maxTags)
	}
	old := *tags
	*tags = merged
	if err := save(); err != nil {
		*tags = old
		return nil, err
	}
	return TagResourceResponse{}, nil
}
