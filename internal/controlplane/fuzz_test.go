package controlplane

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// FuzzOperations feeds arbitrary bodies to every operation: each answers
// or refuses, never panics, and a refusal is always a typed *Error.
func FuzzOperations(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"HsmType":"hsm1.medium","SubnetIds":["subnet-0aaaaaaa"]}`, `{"Filters":{"clusterIds":["cluster-aaaaaaaaaaa"]}}`,
		`{"MaxResults":0}`, `{"NextToken":"Y29mZmVyMTp4"}`, `{"ClusterId":"cluster-aaaaaaaaaaa","AvailabilityZone":"us-east-1a","IpAddress":"127.0.0.11"}`,
		`{"ResourceId":"cluster-aaaaaaaaaaa","TagList":[{"Key":"a","Value":"b"}]}`, `{"BackupId":"backup-aaaaaaaaaaa","NeverExpires":true}`,
		`{"ResourceArn":"arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-aaaaaaaaaaa","Policy":"{}"}`, `null`, `[]`, `"x"`,
	} {
		f.Add(seed)
	}
	s, err := New(testConfig(f.TempDir(), newFakeProv()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ops := make([]string, 0, len(operations))
	for name := range operations {
		ops = append(ops, name)
	}
	slices.Sort(ops)
	f.Fuzz(func(t *testing.T, body string) {
		for _, name := range ops {
			c := &call{ctx: context.Background(), region: s.regions["us-east-1"], account: testCred.AccountID}
			out, err := operations[name].run(s, c, []byte(body))
			if err != nil {
				if _, _, _, internal := wireError(err); internal {
					t.Fatalf("%s(%q): untyped error %v", name, body, err)
				}
				continue
			}
			if _, err := json.Marshal(out); err != nil {
				t.Fatalf("%s(%q): answer does not encode: %v", name, body, err)
			}
		}
	})
}

// FuzzTimestamp: a timestamp that decodes encodes to the same instant (to
// the millisecond).
func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{"0", "1700000000.123", "-1", "1e10", "1.5e9", "99999999999.999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var ts Timestamp
		if err := json.Unmarshal([]byte(in), &ts); err != nil {
			return
		}
		b, err := json.Marshal(ts)
		if err != nil {
			t.Fatal(err)
		}
		var back Timestamp
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s re-encoded as %s: %v", in, b, err)
		}
		if d := time.Time(back).Sub(time.Time(ts)); d > time.Millisecond || d < -time.Millisecond {
			t.Fatalf("%s → %s: off by %s", in, b, d)
		}
	})
}
