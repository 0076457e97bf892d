package controlplane

import (
	"slices"
	"strings"
)

// DescribeClustersRequest is the input of DescribeClusters.
type DescribeClustersRequest struct {
	Filters    map[string][]string `json:"Filters"`
	NextToken  string              `json:"NextToken"`
	MaxResults *int                `json:"MaxResults"`
}

// DescribeClustersResponse is the output of DescribeClusters.
type DescribeClustersResponse struct {
	Clusters  []Cluster `json:"Clusters"`
	NextToken string    `json:"NextToken,omitempty"`
}

const maxClustersPage = 25

func (s *Server) describeClusters(c *call, body []byte) (any, error) {
	var req DescribeClustersRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.NextToken) > 256 {
		return nil, invalid("NextToken is longer than 256 characters.")
	}
	match, err := clusterFilter(req.Filters)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*clusterRecord
	for _, cl := range c.region.clusters {
		if ownedBy(cl.Account, c.account) && match(cl) {
			all = append(all, cl)
		}
	}
	pos := func(cl *clusterRecord) string { return position(cl.Created, cl.ID) }
	slices.SortFunc(all, func(a, b *clusterRecord) int { return strings.Compare(pos(a), pos(b)) })
	pg, next, err := paginate(all, pos, req.NextToken, req.MaxResults, maxClustersPage, false)
	if err != nil {
		return nil, err
	}
	out := DescribeClustersResponse{Clusters: []Cluster{}, NextToken: next}
	for _, cl := range pg {
		out.Clusters = append(out.Clusters, cl.wire())
	}
	return out, nil
}

// clusterFilter checks DescribeClusters' filters: clusterIds, vpcIds,
// states.
func clusterFilter(filters map[string][]string) (func(*clusterRecord) bool, error) {
	for k, vs := range filters {
		if !reField.MatchString(k) {
			return nil, invalid("Invalid filter name %q.", truncate(k, 64))
		}
		for _, v := range vs {
			var err error
			switch k {
			case "clusterIds":
				err = checkPattern("filters.clusterIds", v, reClusterID, "cluster-abcdefghijk")
			case "vpcIds":
				err = checkPattern("filters.vpcIds", v, reVpcID, "vpc-c0ffee00")
			case "states":
				if !slices.Contains(clusterStates, v) {
					err = invalid("Invalid state %q in filter states; valid states: %s.", truncate(v, 64), strings.Join(clusterStates, ", "))
				}
			default:
				err = invalid("Invalid filter %q. Valid filters for DescribeClusters: clusterIds, states, vpcIds.", truncate(k, 64))
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return func(cl *clusterRecord) bool {
		for k, vs := range filters {
			var v string
			switch k {
			case "clusterIds":
				v = cl.ID
			case "vpcIds":
				v = cl.VpcID
			case "states":
				v = cl.State
			}
			if !slices.Contains(vs, v) {
				return false
			}
		}
		return true
	}, nil
}
