package controlplane

import "strconv"

// ListTagsRequest is the input of ListTags.
type ListTagsRequest struct {
	ResourceId string `json:"ResourceId"`
	NextToken  string `json:"NextToken"`
	MaxResults *int   `json:"MaxResults"`
}

// ListTagsResponse is the output of ListTags.
type ListTagsResponse struct {
	TagList   []Tag  `json:"TagList"`
	NextToken string `json:"NextToken,omitempty"`
}

const maxTagsPage = 100

// listTags lists a resource's tags in the order they were added.
func (s *Server) listTags(c *call, body []byte) (any, error) {
	var req ListTagsRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tags, _, err := s.taggable(c, req.ResourceId)
	if err != nil {
		return nil, err
	}
	type indexed struct {
		i int
		t Tag
	}
	all := make([]indexed, len(*tags))
	for i, t := range *tags {
		all[i] = indexed{i, t}
	}
	pos := func(x indexed) string { return strconv.Itoa(1000 + x.i) } // fixed width: at most 50 tags
	pg, next, err := paginate(all, pos, req.NextToken, req.MaxResults, maxTagsPage, false)
	if err != nil {
		return nil, err
	}
	out := ListTagsResponse{TagList: []Tag{}, NextToken: next}
	for _, x := range pg {
		out.TagList = append(out.TagList, x.t)
	}
	return out, nil
}
