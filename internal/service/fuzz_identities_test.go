package service

import (
	"context"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/resolverd/resolverd/internal/db"
	"github.com/resolverd/resolverd/internal/rbac"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func (q *fakeQuerier) PutWorkloadIdentity(_ context.Context, subject string, scopes []string, description string, _ func([]string) error) (db.WorkloadIdentity, bool, error) {
	q.rec("PutWorkloadIdentity", subject, scopes, description)
	return db.WorkloadIdentity{}, false, errFakeStore
}

func (q *fakeQuerier) DeleteWorkloadIdentity(_ context.Context, subject string, _ func([]string) error) error {
	q.rec("DeleteWorkloadIdentity", subject)
	return errFakeStore
}

// subjectOracle is docs/CONTRACT.md §3.6's rule for a subject, written independently of
// identity.CheckSubject: 1 to 1024 bytes, every byte part of a valid UTF-8 rune that is neither a
// control nor a format (Cf) character, and no white space first or last.
func subjectOracle(s string) bool {
	if len(s) == 0 || len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 || unicode.In(r, unicode.Cc, unicode.Cf) {
			return false
		}
		i += n
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	return !unicode.IsSpace(first) && !unicode.IsSpace(last)
}

// FuzzWorkloadIdentityRequests: PutWorkloadIdentity refuses exactly a bad subject, unknown or no
// scopes and a bad description, and hands the store the subject, the sorted distinct scopes and
// the description; DeleteWorkloadIdentity refuses exactly a bad subject.
func FuzzWorkloadIdentityRequests(f *testing.F) {
	f.Add("system:serviceaccount:chat:worker", "chat:read,model_config:read", "chat workers", false)
	f.Add("spiffe://example.org/ns/chat/sa/worker", "*", "", true)
	f.Add("cn:worker 1", "chat:read,chat:read", "x", false)
	f.Add("", "", " padded", true)
	f.Add(" cn:x", "bogus", "line\nbreak", false)
	f.Add("cn:\u200bzero-width", "chat:read", "", true)
	f.Add(strings.Repeat("a", 1024), "chat:read", strings.Repeat("é", 200), false)
	f.Add(strings.Repeat("a", 1025), "chat:read", strings.Repeat("é", 201), true)
	f.Add("cn:\xff", "chat:read", "", false)
	f.Fuzz(func(t *testing.T, subject, scopeList, description string, del bool) {
		a, q := fuzzAdmin()
		var v violations
		if !subjectOracle(subject) {
			v.add("subject", "bad")
		}
		if del {
			req := &resolverv1.DeleteWorkloadIdentityRequest{Subject: subject}
			_, err := a.DeleteWorkloadIdentity(fuzzCtx(), req)
			call := checkOutcome(t, req, err, fieldsOf(v), q, "DeleteWorkloadIdentity")
			if len(v) == 0 && call.args[0].(string) != subject {
				t.Fatalf("the store got subject %q for %q", call.args[0], subject)
			}
			return
		}
		var scopes []string
		if scopeList != "" {
			scopes = strings.Split(scopeList, ",")
		}
		req := &resolverv1.PutWorkloadIdentityRequest{Subject: subject, Scopes: scopes, Description: description}
		resp, err := a.PutWorkloadIdentity(fuzzCtx(), req)
		if resp != nil {
			t.Fatalf("the fake store bound nothing, yet PutWorkloadIdentity answered %v", resp)
		}
		parsed, perr := rbac.ParseScopes(scopes)
		switch {
		case perr != nil:
			v.add("scopes", "%v", perr)
		case len(parsed) == 0:
			v.add("scopes", "at least one scope is required")
		}
		v.text("description", description, false)
		call := checkOutcome(t, req, err, fieldsOf(v), q, "PutWorkloadIdentity")
		if len(v) > 0 {
			return
		}
		want := slices.Clone(scopes)
		slices.Sort(want)
		want = slices.Compact(want)
		if call.args[0].(string) != subject || !slices.Equal(call.args[1].([]string), want) || call.args[2].(string) != description {
			t.Fatalf("the store got %v for %q %v %q", call.args, subject, want, description)
		}
	})
}
