package resolution_test

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
)

// TestResolveE2EScopes covers docs/CONTRACT.md §3: the scopes ResolveModel needs, checked where rows are read,
// never turned into "not found" or a fallback.
func TestResolveE2EScopes(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})
	owner := w.person()
	pd := w.prov("openai", reDisabled) // central key only
	kd := w.central(pd.Id)
	cd := w.cfg(pd.Id)
	po := w.prov("anthropic", reOptional) // central key and the owner's key
	w.central(po.Id)
	uo := w.own(owner.Id, po.Id)
	co := w.cfg(po.Id)
	pon := w.prov("google", reOptional) // central key, the owner has none
	w.central(pon.Id)
	con := w.cfg(pon.Id)
	pr := w.prov("openrouter", reRequired) // the owner's key only
	ur := w.own(owner.Id, pr.Id)
	cr := w.cfg(pr.Id)
	pb := w.prov("bedrock", reDisabled) // no key: ambient
	cb := w.cfg(pb.Id)
	cx := w.cfg(pd.Id)
	w.DisableConfig(cx.Id)
	w.def(pd.Id)
	chat := w.Chat(owner.Id, cd.Id)  // own model needs the central key
	chatO := w.Chat(owner.Id, co.Id) // own model settled by the owner's key
	unknownChat, unknownConfig := uuid.NewString(), uuid.NewString()

	for _, scope := range []rbac.Scope{rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead} {
		t.Run("without "+string(scope), func(t *testing.T) {
			w := w.in(t)
			ctx := w.reWithout(scope)
			before := w.TablesSnapshot(t)
			for _, c := range []string{chat.Id, chatO.Id, unknownChat} {
				for _, id := range []string{"", cd.Id, co.Id, cb.Id, cx.Id, unknownConfig} {
					for _, p := range rePurposes {
						_, err := w.call(ctx, c, id, p)
						reDenied(t, err, scope)
					}
				}
			}
			if after := w.TablesSnapshot(t); after != before {
				t.Errorf("refused calls changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	t.Run("without "+string(rbac.UserAIProviderKeyRead), func(t *testing.T) {
		w := w.in(t)
		ctx := w.reWithout(rbac.UserAIProviderKeyRead)
		for _, p := range rePurposes {
			// BYOK disabled for the resolved provider: the owner's keys are never read.
			res, err := w.call(ctx, chat.Id, cd.Id, p)
			reOK(t, res, err, reWant{config: cd, provider: pd, cred: kd, requested: cd.Id})
			res, err = w.call(ctx, chat.Id, cb.Id, p)
			reOK(t, res, err, reWant{config: cb, provider: pb, cred: reAmbient, requested: cb.Id})
			// BYOK allowed: optional with or without the owner's key, required.
			for _, id := range []string{co.Id, con.Id, cr.Id} {
				_, err := w.call(ctx, chat.Id, id, p)
				reDenied(t, err, rbac.UserAIProviderKeyRead)
			}
			_, err = w.call(ctx, chatO.Id, "", p)
			reDenied(t, err, rbac.UserAIProviderKeyRead)
		}
		for _, p := range reSoft {
			// An unusable override falls back to the chat's own model, whose provider is BYOK-disabled.
			res, err := w.call(ctx, chat.Id, cx.Id, p)
			reOK(t, res, err, reWant{config: cd, provider: pd, cred: kd, requested: cx.Id, fallback: true, reason: "MODEL_CONFIG_DISABLED"})
			// The same fallback onto a BYOK provider needs the scope: denied, not a fallback.
			_, err = w.call(ctx, chatO.Id, cx.Id, p)
			reDenied(t, err, rbac.UserAIProviderKeyRead)
		}
	})

	t.Run("without "+string(rbac.AIProviderKeyRead), func(t *testing.T) {
		w := w.in(t)
		ctx := w.reWithout(rbac.AIProviderKeyRead)
		for _, p := range rePurposes {
			// The owner's own key settles it: central keys are never read.
			res, err := w.call(ctx, chat.Id, co.Id, p)
			reOK(t, res, err, reWant{config: co, provider: po, cred: uo, requested: co.Id})
			res, err = w.call(ctx, chat.Id, cr.Id, p)
			reOK(t, res, err, reWant{config: cr, provider: pr, cred: ur, requested: cr.Id})
			res, err = w.call(ctx, chatO.Id, "", p)
			reOK(t, res, err, reWant{config: co, provider: po, cred: uo, requested: co.Id})
			// Central keys are needed (bedrock reads them to learn it has none).
			for _, id := range []string{cd.Id, con.Id, cb.Id} {
				_, err := w.call(ctx, chat.Id, id, p)
				reDenied(t, err, rbac.AIProviderKeyRead)
			}
			_, err = w.call(ctx, chat.Id, "", p)
			reDenied(t, err, rbac.AIProviderKeyRead)
		}
		// PURPOSE_CHAT's fallback onto the default needs its central key.
		_, err := w.call(ctx, chatO.Id, unknownConfig, reChat)
		reDenied(t, err, rbac.AIProviderKeyRead)
		for _, p := range reSoft {
			// A soft override whose key read is denied does not fall back.
			for _, id := range []string{cd.Id, con.Id} {
				_, err := w.call(ctx, chatO.Id, id, p)
				reDenied(t, err, rbac.AIProviderKeyRead)
			}
			// An unusable override falls back onto a model the owner's key settles.
			res, err := w.call(ctx, chatO.Id, cx.Id, p)
			reOK(t, res, err, reWant{config: co, provider: po, cred: uo, requested: cx.Id, fallback: true, reason: "MODEL_CONFIG_DISABLED"})
			// ... or onto one that needs central keys: denied.
			_, err = w.call(ctx, chat.Id, cx.Id, p)
			reDenied(t, err, rbac.AIProviderKeyRead)
		}
	})

	t.Run("a denied scope is never not-found", func(t *testing.T) {
		w := w.in(t)
		ctx := w.reWithout(rbac.AIProviderKeyRead)
		// A missing chat is reported only to a caller who may read chats.
		_, err := w.call(ctx, unknownChat, "", reChat)
		reFail(t, err, codes.NotFound, "CHAT_NOT_FOUND", map[string]string{"chat_id": unknownChat})
		for _, drop := range []rbac.Scope{rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead} {
			_, err := w.call(w.reWithout(drop), unknownChat, unknownConfig, reTitle)
			reDenied(t, err, drop)
		}
	})

	t.Run("a token with no scope, and one with all", func(t *testing.T) {
		w := w.in(t)
		none := w.As(w.Token(t, "re-none"))
		for _, p := range rePurposes {
			_, err := w.call(none, chat.Id, "", p)
			info := testenv.WantReason(t, err, codes.PermissionDenied, "MISSING_SCOPE")
			switch s := info.GetMetadata()["scope"]; rbac.Scope(s) {
			case rbac.ChatRead, rbac.ModelConfigRead, rbac.AIProviderRead:
			default:
				t.Errorf("metadata[scope] = %q, want one of the three read scopes every call needs", s)
			}
			res, err := w.call(w.AsAdmin(), chatO.Id, "", p)
			reOK(t, res, err, reWant{config: co, provider: po, cred: uo, requested: co.Id})
		}
	})
}
