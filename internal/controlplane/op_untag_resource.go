package controlplane

import "slices"

// UntagResourceRequest is the input of UntagResource.
type UntagResourceRequest struct {
	ResourceId string   `json:"ResourceId"`
	TagKeyList []string `json:"TagKeyList"`
}

// UntagResourceResponse is the (empty) output of UntagResource.
type UntagResourceResponse struct{}

func (s *Server) untagResource(c *call, body []byte) (any, error) {
	var req UntagResourceRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.TagKeyList) < 1 || len(req.TagKeyList) > maxTags {
		return nil, invalid("1 validation error detected: Value at 'tagKeyList' failed to satisfy constraint: Member must have length between 1 and %d", maxTags)
	}
	for _, k := range req.TagKeyList {
		if err := checkTagKey("tagKeyList.member", k); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tags, save, err := s.taggable(c, req.ResourceId)
	if err != nil {
		return nil, err
	}
	old := *tags
	*tags = slices.DeleteFunc(slices.Clone(old), func(t Tag) bool { return slices.Contains(req.TagKeyList, t.Key) })
	if err := save(); err != nil {
		*tags = old
		return nil, err
	}
	return UntagResourceResponse{}, nil
}
