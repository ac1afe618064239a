package resolution_test

import (
	"testing"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func TestSmoke(t *testing.T) {
	w := testenv.NewWorld(t, testenv.Options{})
	p := w.Provider("openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	k := w.CentralKey(p.Id, "sk-central-1")
	c := w.Config(p.Id, "gpt-4o", true)
	u := w.User("alice")
	chat := w.Chat(u.Id, c.Id)
	res, err := w.Resolve(chat.Id, "", resolverv1.Purpose_PURPOSE_CHAT)
	if err != nil {
		t.Fatal(err)
	}
	if res.Credential.ApiKey != "sk-central-1" || res.Credential.KeyId != k.Id || res.Credential.Fingerprint != k.Fingerprint {
		t.Fatalf("credential = %v", res.Credential)
	}
	t.Logf("%v", res)
}
