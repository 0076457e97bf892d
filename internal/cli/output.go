package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Format is how results are printed.
type Format int

const (
	// JSON prints {"error_code": 0, "data": ...}, as the CloudHSM CLI does.
	JSON Format = 1
	// Table prints for people: tables for lists, "name: value" otherwise.
	Table Format = 2
)

func (f Format) String() string {
	if f == Table {
		return "table"
	}
	return "json"
}

// ParseFormat reads --output.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "json", "":
		return JSON, nil
	case "table":
		return Table, nil
	}
	return 0, Usagef("--output %q: want json or table", s)
}

// response is every result in JSON: error_code 0 with the data, or the
// exit code (1 or 2) with the error message, so that the two never disagree.
type response struct {
	ErrorCode int `json:"error_code"`
	Data      any `json:"data"`
}

// Tabler is a result that prints as a table in --output table.
type Tabler interface {
	Table() (header []string, rows [][]string)
}

// Print prints a command's result.
func (e *Env) Print(data any) error {
	if e.Format == Table {
		return printTable(e.Out, data)
	}
	return writeJSON(e.Out, response{ErrorCode: 0, Data: data})
}

// PrintError prints a failed command's error and returns its exit code.
func (e *Env) PrintError(err error) int {
	msg, code := Describe(err)
	if msg == "" {
		return code
	}
	if e.Format == Table {
		fmt.Fprintln(e.Err, "error:", msg)
		return code
	}
	_ = writeJSON(e.Out, response{ErrorCode: code, Data: msg})
	return code
}

func writeJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return Failf("printing the result: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func printTable(w io.Writer, data any) error {
	if t, ok := data.(Tabler); ok {
		header, rows := t.Table()
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		return tw.Flush()
	}
	if s, ok := data.(string); ok {
		_, err := fmt.Fprintln(w, s)
		return err
	}
	b, err := json.Marshal(data)
	if err != nil {
		return Failf("printing the result: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out bytes.Buffer
	if err := textValue(&out, dec, "", ""); err != nil {
		return Failf("printing the result: %w", err)
	}
	_, err = w.Write(out.Bytes())
	return err
}

// textValue prints the next JSON value of dec as indented "label: value"
// lines, keeping the order of object keys.
func textValue(w io.Writer, dec *json.Decoder, indent, label string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		if tok == nil {
			tok = "-"
		}
		switch label {
		case "":
			fmt.Fprintf(w, "%s%v\n", indent, tok)
		case "-":
			fmt.Fprintf(w, "%s- %v\n", indent, tok)
		default:
			fmt.Fprintf(w, "%s%s: %v\n", indent, label, tok)
		}
		return nil
	}
	switch label {
	case "":
	case "-":
		fmt.Fprintf(w, "%s-\n", indent)
		indent += "  "
	default:
		fmt.Fprintf(w, "%s%s:\n", indent, label)
		indent += "  "
	}
	for dec.More() {
		var key string
		if d == '{' {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key = k.(string)
		} else {
			key = "-"
		}
		if err := textValue(w, dec, indent, key); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}
