package resolution_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestResolveE2ENoSecretInErrorsOrLogs provokes every kind of refusal next to seeded keys; w.call
// checks each error and reNew's cleanup the whole log, and here the log is also checked to be the one
// the calls went to.
func TestResolveE2ENoSecretInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})
	req := w.reSetup("anthropic", reRequired)
	w.central(req.p.Id)
	w.own(w.person().Id, req.p.Id)
	off := w.reSetup("openai", reDisabled)
	w.setKeyEnabled(w.central(off.p.Id).keyID, false)
	opt := w.reSetup("google", reOptional)
	mine := w.own(opt.owner.Id, opt.p.Id)
	central := w.central(opt.p.Id)

	req.fail(w, "USER_KEY_REQUIRED")
	off.fail(w, "NO_CREDENTIALS")
	opt.ok(w, mine)
	_, err := w.call(w.reWithout(rbac.UserAIProviderKeyRead), opt.chat.Id, "", reTitle)
	reDenied(t, err, rbac.UserAIProviderKeyRead)
	_, err = w.call(w.reWithout(rbac.AIProviderKeyRead), off.chat.Id, "", reChat)
	reDenied(t, err, rbac.AIProviderKeyRead)
	_, err = w.res(opt.chat.Id, mine.apiKey, reSubagent)
	testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
	_, err = w.res(central.apiKey, "", reChat)
	testenv.WantReason(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
	_, err = w.call(w.As(central.apiKey), opt.chat.Id, "", reChat)
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")
	_, err = w.call(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+mine.apiKey), opt.chat.Id, "", reChat)
	testenv.WantReason(t, err, codes.Unauthenticated, "UNAUTHENTICATED")

	logs := w.Logs.String()
	if n := strings.Count(logs, resolverv1.ResolverService_ResolveModel_FullMethodName); n < 9 {
		t.Fatalf("the server log has %d ResolveModel lines, want at least 9 (one per call above):\n%s", n, logs)
	}
	w.noKeyIn(t, "the server log", logs)
}
