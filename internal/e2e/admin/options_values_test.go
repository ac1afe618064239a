package admin_test

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestAdminE2EOptionsWithoutAJSONValue: a Struct is always an object, so options holding a number
// JSON cannot write (NaN, ±Infinity) or a Value with no kind set is refused saying which of these
// is at fault, not "must be a JSON object", which the caller's object already is.
func TestAdminE2EOptionsWithoutAJSONValue(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	ctx, a := w.AsAdmin(), w.Admin
	p := w.Provider("opt-openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	for name, v := range map[string]*structpb.Value{
		"nan": structpb.NewNumberValue(math.NaN()), "infinity": structpb.NewNumberValue(math.Inf(1)), "unset": {},
	} {
		opts := &structpb.Struct{Fields: map[string]*structpb.Value{"temperature": v}}
		_, err := a.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.GetId(), Model: "m", ContextLimit: 1, Options: opts})
		testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
		br := testenv.BadRequest(err)
		if len(br.GetFieldViolations()) != 1 || br.GetFieldViolations()[0].GetField() != "options" {
			t.Fatalf("%s: violations %v, want one on options", name, br.GetFieldViolations())
		}
		if d := br.GetFieldViolations()[0].GetDescription(); !strings.Contains(d, "NaN") || !strings.Contains(d, "value") {
			t.Errorf("%s: description %q does not say what is wrong", name, d)
		}
	}
}
