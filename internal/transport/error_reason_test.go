package transport_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/code"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/internal/transport"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// reasonConstants returns every constant of type errs.Reason declared in internal/errs, by value,
// read from the source: a new reason cannot be forgotten by a hand-kept list.
func reasonConstants(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("../errs/*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{} // value → constant name
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if lit := reasonLiteral(vs, i); lit != "" {
						out[lit] = name.Name
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("found no errs.Reason constants in internal/errs")
	}
	return out
}

// reasonLiteral returns the string value of the i-th constant of vs when it is an errs.Reason:
// `X Reason = "..."` or `X = Reason("...")`.
func reasonLiteral(vs *ast.ValueSpec, i int) string {
	if i >= len(vs.Values) {
		return ""
	}
	v := vs.Values[i]
	typed := false
	if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Reason" {
		typed = true
	}
	if call, ok := v.(*ast.CallExpr); ok && len(call.Args) == 1 {
		if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "Reason" {
			typed, v = true, call.Args[0]
		}
	}
	lit, ok := v.(*ast.BasicLit)
	if !typed || !ok || lit.Kind != token.STRING {
		return ""
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return ""
	}
	return s
}

// TestErrorReasonEnumIsErrsReason: the value names of resolver.v1.ErrorReason (but
// ERROR_REASON_UNSPECIFIED) are exactly the errs.Reason strings resolverd sends in
// ErrorInfo.reason, both ways.
func TestErrorReasonEnumIsErrsReason(t *testing.T) {
	consts := reasonConstants(t)
	enum := map[string]bool{}
	for name := range resolverv1.ErrorReason_value {
		if name != resolverv1.ErrorReason_ERROR_REASON_UNSPECIFIED.String() {
			enum[name] = true
		}
	}
	for _, value := range slices.Sorted(maps.Keys(consts)) {
		if !enum[value] {
			t.Errorf("errs.%s (%q) has no ErrorReason value: add %s to proto/resolver/v1/errors.proto, documented like the others", consts[value], value, value)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(enum)) {
		if _, ok := consts[name]; !ok {
			t.Errorf("ErrorReason.%s is no errs.Reason: resolverd never sends it; remove it (reserve its number) or add the reason", name)
		}
	}
}

// TestErrorReasonCommentsMatchCodes: each ErrorReason value's comment in errors.proto (what
// generated clients show) says "gRPC code: X." with the X transport.CodeOf gives the reason, and
// names its metadata keys. The code table itself lives only in Go.
func TestErrorReasonCommentsMatchCodes(t *testing.T) {
	comments := enumValueComments(t, "../../proto/resolver/v1/errors.proto")
	codeRE := regexp.MustCompile(`gRPC code: ([A-Z_]+)\.`)
	for _, name := range slices.Sorted(maps.Keys(resolverv1.ErrorReason_value)) {
		if name == resolverv1.ErrorReason_ERROR_REASON_UNSPECIFIED.String() {
			continue
		}
		c, ok := comments[name]
		if !ok {
			t.Errorf("ErrorReason.%s has no comment in errors.proto", name)
			continue
		}
		m := codeRE.FindStringSubmatch(c)
		want := code.Code_name[int32(transport.CodeOf(errs.Reason(name)))]
		switch {
		case m == nil:
			t.Errorf("ErrorReason.%s's comment does not say \"gRPC code: %s.\"", name, want)
		case m[1] != want:
			t.Errorf("ErrorReason.%s's comment says gRPC code %s; resolverd sends it with %s (transport.CodeOf)", name, m[1], want)
		}
		if !strings.Contains(c, "Metadata: ") {
			t.Errorf("ErrorReason.%s's comment does not name its metadata keys (\"Metadata: ...\")", name)
		}
	}
}

// enumValueComments reads the leading comment of every `NAME = n;` line of a .proto file.
func enumValueComments(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	valueRE := regexp.MustCompile(`^\s*([A-Z][A-Z0-9_]*)\s*=\s*\d+\s*;`)
	out := map[string]string{}
	var comment []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if c, ok := strings.CutPrefix(line, "//"); ok {
			comment = append(comment, strings.TrimSpace(c))
			continue
		}
		if m := valueRE.FindStringSubmatch(line); m != nil {
			out[m[1]] = strings.Join(comment, " ")
		}
		comment = nil
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
