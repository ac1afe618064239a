package service_test

import (
	"testing"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

func TestSmoke(t *testing.T) {
	w := newWorld(t, testenv.Options{})
	p := w.provider("openai", "openai", resolverv1.ByokPolicy_BYOK_POLICY_OPTIONAL)
	k := w.centralKey(p.Id, "sk-central-1")
	c := w.config(p.Id, "gpt-4o", true)
	u := w.user("alice")
	chat := w.chat(u.Id, c.Id)
	res, err := w.resolve(chat.Id, "", resolverv1.Purpose_PURPOSE_CHAT)
	if err != nil {
		t.Fatal(err)
	}
	if res.Credential.ApiKey != "sk-central-1" || res.Credential.KeyId != k.Id || res.Credential.Fingerprint != k.Fingerprint {
		t.Fatalf("credential = %v", res.Credential)
	}
	t.Logf("%v", res)
}
