package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

type rows struct{}

func (rows) Table() ([]string, [][]string) {
	return []string{"NAME", "ROLE"}, [][]string{{"alice", "crypto-user"}, {"admin", "admin"}}
}

func TestPrint(t *testing.T) {
	type nested struct {
		B string `json:"b"`
		A []int  `json:"a"`
	}
	for _, c := range []struct {
		name   string
		format Format
		data   any
		want   string
	}{
		{"json", JSON, map[string]int{"x": 1}, "{\n  \"error_code\": 0,\n  \"data\": {\n    \"x\": 1\n  }\n}\n"},
		{"json keeps <>&", JSON, "a<b>&c", "{\n  \"error_code\": 0,\n  \"data\": \"a<b>&c\"\n}\n"},
		{"table", Table, rows{}, "NAME   ROLE\nalice  crypto-user\nadmin  admin\n"},
		{"text in order", Table, nested{B: "x", A: []int{1, 2}}, "b: x\na:\n  - 1\n  - 2\n"},
		{"string", Table, "done", "done\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			env := &Env{Out: &out, Format: c.format}
			if err := env.Print(c.data); err != nil {
				t.Fatal(err)
			}
			if out.String() != c.want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), c.want)
			}
		})
	}
}

func TestPrintError(t *testing.T) {
	var out, errOut bytes.Buffer
	env := &Env{Out: &out, Err: &errOut, Format: JSON}
	if code := env.PrintError(Usagef("bad")); code != ExitUsage {
		t.Errorf("code %d", code)
	}
	var r struct {
		ErrorCode int    `json:"error_code"`
		Data      string `json:"data"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.ErrorCode != ExitUsage || r.Data != "bad" {
		t.Errorf("got %s (%v)", out.String(), err)
	}
	out.Reset()
	env.Format = Table
	if code := env.PrintError(errors.New("cobra")); code != ExitUsage {
		t.Errorf("code %d", code)
	}
	if out.Len() != 0 || errOut.String() != "error: cobra\n" {
		t.Errorf("out %q, err %q", out.String(), errOut.String())
	}
	errOut.Reset()
	if code := env.PrintError(ExitStatus(1)); code != 1 || errOut.Len() != 0 {
		t.Errorf("an error reported already was printed again: %q", errOut.String())
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": JSON, "json": JSON, "table": Table} {
		if f, err := ParseFormat(in); err != nil || f != want {
			t.Errorf("%q: %v %v", in, f, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("yaml accepted")
	}
}
