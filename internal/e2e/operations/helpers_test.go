package operations_test

// The helpers several suites of the package use.

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// seedChat makes a provider with a central key, a default config, a user and a chat through
// AdminService, and returns the chat id and the disabled config's id.
func seedChat(t *testing.T, e *testenv.Env, key string) (chat, disabled string) {
	t.Helper()
	ctx := e.AsAdmin()
	p, err := e.Admin.CreateProvider(ctx, &resolverv1.CreateProviderRequest{Type: "openai", Name: "p-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Admin.AddProviderKey(ctx, &resolverv1.AddProviderKeyRequest{ProviderId: p.Id, ApiKey: key}); err != nil {
		t.Fatal(err)
	}
	c, err := e.Admin.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "m", IsDefault: true, ContextLimit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	off, err := e.Admin.CreateModelConfig(ctx, &resolverv1.CreateModelConfigRequest{AiProviderId: p.Id, Model: "off", Enabled: proto.Bool(false), ContextLimit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.Admin.PutUser(ctx, &resolverv1.PutUserRequest{Id: uuid.NewString(), Username: "u-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := e.Admin.PutChat(ctx, &resolverv1.PutChatRequest{Id: uuid.NewString(), OwnerId: u.Id, ModelConfigId: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	return ch.Id, off.Id
}
