package resolution_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestResolveE2EBadInput: invalid requests are INVALID_ARGUMENT naming every bad field, an unknown
// chat is CHAT_NOT_FOUND, and neither changes anything.
func TestResolveE2EBadInput(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})
	s := w.reSetup("openai", reOptional)
	w.central(s.p.Id)
	w.own(s.owner.Id, s.p.Id)
	leaked := w.newKey("pasted") // a worker pasting a key into the wrong field
	before := w.TablesSnapshot(t)

	cases := []struct {
		name    string
		chat    string
		config  string
		purpose resolverv1.Purpose
		fields  []string
	}{
		{"chat_id not a UUID", "not-a-uuid", "", reChat, []string{"chat_id"}},
		{"chat_id empty", "", s.cfg.Id, reTitle, []string{"chat_id"}},
		{"chat_id a UUID with a suffix", s.chat.Id + "0", "", reChat, []string{"chat_id"}},
		{"chat_id an API key", leaked, "", reChat, []string{"chat_id"}},
		{"model_config_id not a UUID", s.chat.Id, "gpt-4o", reSubagent, []string{"model_config_id"}},
		{"model_config_id truncated", s.chat.Id, s.cfg.Id[:30], reTitle, []string{"model_config_id"}},
		{"model_config_id an API key", s.chat.Id, leaked, reCompact, []string{"model_config_id"}},
		{"purpose unspecified", s.chat.Id, "", resolverv1.Purpose_PURPOSE_UNSPECIFIED, []string{"purpose"}},
		{"purpose out of range", s.chat.Id, s.cfg.Id, resolverv1.Purpose(42), []string{"purpose"}},
		{"purpose negative", s.chat.Id, "", resolverv1.Purpose(-1), []string{"purpose"}},
		{"every field bad at once", "x", "y", resolverv1.Purpose(42), []string{"chat_id", "model_config_id", "purpose"}},
		{"chat_id missing and purpose unspecified", "", "", resolverv1.Purpose_PURPOSE_UNSPECIFIED, []string{"chat_id", "purpose"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := w.in(t)
			_, err := w.res(c.chat, c.config, c.purpose)
			testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
			br := testenv.BadRequest(err)
			if br == nil {
				t.Fatalf("no google.rpc.BadRequest in %v", err)
			}
			var fields []string
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
				if v.GetDescription() == "" {
					t.Errorf("violation of %s has no description", v.GetField())
				}
			}
			slices.Sort(fields)
			if !slices.Equal(fields, c.fields) {
				t.Errorf("field violations name %v, want %v", fields, c.fields)
			}
		})
	}

	t.Run("unknown chat", func(t *testing.T) {
		w := w.in(t)
		unknown := uuid.NewString()
		for _, id := range []string{"", s.cfg.Id, uuid.NewString()} {
			for _, p := range rePurposes {
				_, err := w.res(unknown, id, p)
				reFail(t, err, codes.NotFound, "CHAT_NOT_FOUND", map[string]string{"chat_id": unknown})
			}
		}
	})

	if after := w.TablesSnapshot(t); after != before {
		t.Errorf("refused calls changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
