package controlplane

import (
	"strings"
	"testing"
)

func TestMetricIsOne(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"# HELP coffer_cluster_activated x\n# TYPE coffer_cluster_activated gauge\ncoffer_cluster_activated 1\n", true},
		{"coffer_cluster_activated 0\n", false},
		{"coffer_cluster_activated_total 1\ncoffer_cluster_activated 0\n", false},
		{"other 1\n", false},
		{"", false},
	} {
		if got, err := metricIsOne(strings.NewReader(tc.text), "coffer_cluster_activated"); err != nil || got != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.text, got, err, tc.want)
		}
	}
}
