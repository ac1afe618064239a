package resolution_test

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestResolveE2EPurposes covers docs/CONTRACT.md §2.3 beyond the broken-override matrix.
func TestResolveE2EPurposes(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})
	owner := w.person()
	pa := w.prov("openai", reOptional)
	ka := w.central(pa.Id)
	own := w.cfg(pa.Id)
	chat := w.Chat(owner.Id, own.Id)
	// The override's provider and config carry every optional field, so the answer's are compared.
	pb, err := w.Admin.CreateProvider(w.AsAdmin(), &resolverv1.CreateProviderRequest{Type: "anthropic",
		Name: "re-rich-" + reShort(), DisplayName: "Claude (EU)", BaseUrl: "https://eu.example.com/v1", ByokPolicy: reOptional})
	if err != nil {
		t.Fatal(err)
	}
	kb := w.central(pb.Id)
	opts, err := structpb.NewStruct(map[string]any{"temperature": 0.2, "tools": []any{"search"}, "nested": map[string]any{"a": true}})
	if err != nil {
		t.Fatal(err)
	}
	over, err := w.Admin.CreateModelConfig(w.AsAdmin(), &resolverv1.CreateModelConfigRequest{AiProviderId: pb.Id,
		Model: "claude-x", DisplayName: "Claude X", ContextLimit: 200000, CompressionThreshold: 55, Options: opts})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("empty model_config_id is the chat's own model for every purpose", func(t *testing.T) {
		w := w.in(t)
		for _, p := range rePurposes {
			res, err := w.res(chat.Id, "", p)
			reOK(t, res, err, reWant{config: own, provider: pa, cred: ka, requested: own.Id})
		}
	})

	t.Run("a usable override answers with itself and its provider's key for every purpose", func(t *testing.T) {
		w := w.in(t)
		for _, p := range rePurposes {
			res, err := w.res(chat.Id, over.Id, p)
			reOK(t, res, err, reWant{config: over, provider: pb, cred: kb, requested: over.Id})
		}
	})

	t.Run("empty model_config_id is resolved as PURPOSE_CHAT for every purpose", func(t *testing.T) {
		w := w.in(t)
		pd := w.prov("google", reDisabled)
		kd := w.central(pd.Id)
		def := w.def(pd.Id)
		px := w.prov("vercel", reDisabled)
		w.central(px.Id)
		broken := w.cfg(px.Id)
		chat2 := w.Chat(owner.Id, broken.Id)
		w.DisableConfig(broken.Id)
		for _, p := range rePurposes {
			res, err := w.res(chat2.Id, "", p)
			reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: broken.Id, fallback: true, reason: "MODEL_CONFIG_DISABLED"})
		}
		// The chat's own model deleted (by AdminService), then a chat with no model at all.
		gone := w.cfg(px.Id)
		chat4 := w.Chat(owner.Id, gone.Id)
		if _, err := w.Admin.DeleteModelConfig(w.AsAdmin(), &resolverv1.DeleteModelConfigRequest{Id: gone.Id}); err != nil {
			t.Fatal(err)
		}
		chat5 := w.Chat(owner.Id, "")
		for _, p := range rePurposes {
			res, err := w.res(chat4.Id, "", p)
			reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: gone.Id, fallback: true, reason: "MODEL_CONFIG_NOT_FOUND"})
			res, err = w.res(chat5.Id, "", p)
			reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: "", fallback: true, reason: "MODEL_CONFIG_NOT_FOUND"})
		}
		// A chat whose own model has no credential: PURPOSE_CHAT's rule makes it an error, for every purpose.
		pn := w.prov("azure", reDisabled)
		nocred := w.cfg(pn.Id)
		chat3 := w.Chat(owner.Id, nocred.Id)
		for _, p := range rePurposes {
			_, err := w.res(chat3.Id, "", p)
			reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": pn.Id})
		}
	})

	t.Run("title override reads the override provider's keys, fresh after every change", func(t *testing.T) {
		w := w.in(t)
		u := w.person()
		userA := w.own(u.Id, pa.Id) // the owner has a key for the chat's provider A only
		c := w.Chat(u.Id, own.Id)
		res, err := w.res(c.Id, "", reChat)
		reOK(t, res, err, reWant{config: own, provider: pa, cred: userA, requested: own.Id})

		pt := w.prov("anthropic", reOptional)
		k1 := w.central(pt.Id)
		title := w.cfg(pt.Id)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k1, requested: title.Id})

		userT := w.own(u.Id, pt.Id)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: userT, requested: title.Id})
		if _, err := w.Admin.DeleteUserProviderKey(w.AsAdmin(), &resolverv1.DeleteUserProviderKeyRequest{Id: userT.keyID}); err != nil {
			t.Fatal(err)
		}
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k1, requested: title.Id})

		// AdminService rotation: the very next resolution answers with the new key.
		k2 := w.rotate(pt.Id)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k2, requested: title.Id})
		if k2.fp == k1.fp || k2.keyID == k1.keyID {
			t.Errorf("rotation returned the old key's id or fingerprint")
		}
		k3 := w.rotate(pt.Id)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k3, requested: title.Id})

		// psql disables every key of the title provider: BYOK is allowed there, so USER_KEY_REQUIRED.
		w.psql(`UPDATE ai_provider_keys SET enabled = false WHERE provider_id = $1`, pt.Id)
		_, err = w.res(c.Id, title.Id, reTitle)
		reFail(t, err, reFP, "USER_KEY_REQUIRED", map[string]string{"provider_id": pt.Id, "model_config_id": title.Id})
		// ... and turns BYOK off for it: NO_CREDENTIALS.
		w.psql(`UPDATE ai_providers SET byok_policy = 'disabled' WHERE id = $1`, pt.Id)
		_, err = w.res(c.Id, title.Id, reTitle)
		reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": pt.Id, "model_config_id": title.Id})
		// psql re-enables the second key: it is now the oldest enabled one.
		w.psql(`UPDATE ai_provider_keys SET enabled = true WHERE id = $1`, k2.keyID)
		res, err = w.res(c.Id, title.Id, reTitle)
		reOK(t, res, err, reWant{config: title, provider: pt, cred: k2, requested: title.Id})
		// psql disables the title provider, then the title config.
		w.psql(`UPDATE ai_providers SET enabled = false WHERE id = $1`, pt.Id)
		_, err = w.res(c.Id, title.Id, reTitle)
		reFail(t, err, reFP, "PROVIDER_DISABLED", map[string]string{"model_config_id": title.Id, "provider_id": pt.Id})
		w.psql(`UPDATE chat_model_configs SET enabled = false WHERE id = $1`, title.Id)
		_, err = w.res(c.Id, title.Id, reTitle)
		reFail(t, err, reFP, "MODEL_CONFIG_DISABLED", map[string]string{"model_config_id": title.Id})
		// The chat's own model is untouched throughout.
		res, err = w.res(c.Id, "", reTitle)
		reOK(t, res, err, reWant{config: own, provider: pa, cred: userA, requested: own.Id})
	})

	t.Run("PURPOSE_CHAT with no usable default", func(t *testing.T) {
		w := w.in(t)
		pd := w.prov("google", reDisabled)
		kd := w.central(pd.Id)
		def := w.def(pd.Id)
		px := w.prov("openrouter", reDisabled)
		w.central(px.Id)
		broken := w.cfg(px.Id)
		w.DisableConfig(broken.Id)

		w.DisableConfig(def.Id)
		_, err := w.res(chat.Id, broken.Id, reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", map[string]string{"model_config_id": broken.Id})
		// The requested config is the default itself.
		_, err = w.res(chat.Id, def.Id, reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
		// The default enabled again answers; then psql disables its provider.
		if _, err := w.Admin.UpdateModelConfig(w.AsAdmin(), &resolverv1.UpdateModelConfigRequest{Id: def.Id, Enabled: proto.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		res, err := w.res(chat.Id, broken.Id, reChat)
		reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: broken.Id, fallback: true, reason: "MODEL_CONFIG_DISABLED"})
		w.psql(`UPDATE ai_providers SET enabled = false WHERE id = $1`, pd.Id)
		_, err = w.res(chat.Id, broken.Id, reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
		// No default at all.
		if _, err := w.Admin.DeleteModelConfig(w.AsAdmin(), &resolverv1.DeleteModelConfigRequest{Id: def.Id}); err != nil {
			t.Fatal(err)
		}
		_, err = w.res(chat.Id, broken.Id, reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
		_, err = w.res(chat.Id, uuid.NewString(), reChat)
		reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
	})

	t.Run("PURPOSE_CHAT falling back to a default without credentials fails", func(t *testing.T) {
		w := w.in(t)
		pd := w.prov("google", reDisabled)
		def := w.def(pd.Id) // no key, BYOK disabled
		_, err := w.res(chat.Id, uuid.NewString(), reChat)
		reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": pd.Id, "model_config_id": def.Id})
	})

	t.Run("soft override when the chat's own model is unusable too", func(t *testing.T) {
		w := w.in(t)
		pd := w.prov("google", reDisabled)
		kd := w.central(pd.Id)
		def := w.def(pd.Id)
		px := w.prov("openrouter", reDisabled)
		w.central(px.Id)
		ownBroken := w.cfg(px.Id)
		c := w.Chat(owner.Id, ownBroken.Id)
		w.DisableProvider(px.Id)
		overBroken := w.cfg(pb.Id)
		w.DisableConfig(overBroken.Id)
		for _, p := range reSoft {
			// The chat's own model is resolved as PURPOSE_CHAT: it falls back to the default.
			res, err := w.res(c.Id, overBroken.Id, p)
			reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: overBroken.Id, fallback: true, reason: "MODEL_CONFIG_DISABLED"})
		}
		w.DisableConfig(def.Id)
		for _, p := range reSoft {
			_, err := w.res(c.Id, overBroken.Id, p)
			reFail(t, err, reFP, "NO_USABLE_MODEL_CONFIG", nil)
		}
		// The chat's own model has no credential: an error, not a second fallback.
		pn := w.prov("azure", reDisabled)
		ownNoCred := w.cfg(pn.Id)
		c2 := w.Chat(owner.Id, ownNoCred.Id)
		for _, p := range reSoft {
			_, err := w.res(c2.Id, overBroken.Id, p)
			reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": pn.Id})
		}
	})
}
