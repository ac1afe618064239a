package resolution_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// reBreak is one way a requested config can be unusable (docs/CONTRACT.md §2.1) or lack a usable credential
// (docs/CONTRACT.md §2.2), made through AdminService or by another writer (psql).
type reBreak struct {
	name   string
	code   codes.Code
	reason string
	// cred marks a credential failure: PURPOSE_CHAT then fails instead of using the default.
	cred bool
	// make builds a config broken this way for chats owned by owner and returns its id.
	make func(w *reWorld, owner string) string
}

// reWorking makes a provider of policy with one central key and a config on it.
func (w *reWorld) reWorking(policy resolverv1.ByokPolicy) (*resolverv1.Provider, reCred, *resolverv1.ModelConfig) {
	w.T.Helper()
	p := w.prov("anthropic", policy)
	k := w.central(p.Id)
	return p, k, w.cfg(p.Id)
}

var reBreaks = []reBreak{
	{"config disabled by admin", reFP, "MODEL_CONFIG_DISABLED", false, func(w *reWorld, _ string) string {
		_, _, c := w.reWorking(reDisabled)
		w.DisableConfig(c.Id)
		return c.Id
	}},
	{"config disabled by psql", reFP, "MODEL_CONFIG_DISABLED", false, func(w *reWorld, _ string) string {
		_, _, c := w.reWorking(reDisabled)
		w.psql(`UPDATE chat_model_configs SET enabled = false WHERE id = $1`, c.Id)
		return c.Id
	}},
	{"config deleted by admin", codes.NotFound, "MODEL_CONFIG_NOT_FOUND", false, func(w *reWorld, _ string) string {
		_, _, c := w.reWorking(reDisabled)
		if _, err := w.Admin.DeleteModelConfig(w.AsAdmin(), &resolverv1.DeleteModelConfigRequest{Id: c.Id}); err != nil {
			w.T.Fatal(err)
		}
		return c.Id
	}},
	{"config deleted by psql", codes.NotFound, "MODEL_CONFIG_NOT_FOUND", false, func(w *reWorld, _ string) string {
		_, _, c := w.reWorking(reDisabled)
		w.psql(`UPDATE chat_model_configs SET deleted = true WHERE id = $1`, c.Id)
		return c.Id
	}},
	{"config never existed", codes.NotFound, "MODEL_CONFIG_NOT_FOUND", false, func(*reWorld, string) string {
		return uuid.NewString()
	}},
	{"config disabled on a disabled provider", reFP, "MODEL_CONFIG_DISABLED", false, func(w *reWorld, _ string) string {
		p, _, c := w.reWorking(reDisabled)
		w.DisableConfig(c.Id)
		w.DisableProvider(p.Id)
		return c.Id
	}},
	{"config disabled on a deleted provider", reFP, "MODEL_CONFIG_DISABLED", false, func(w *reWorld, _ string) string {
		p, _, c := w.reWorking(reDisabled)
		w.DisableConfig(c.Id)
		if _, err := w.Admin.DeleteProvider(w.AsAdmin(), &resolverv1.DeleteProviderRequest{Id: p.Id}); err != nil {
			w.T.Fatal(err)
		}
		return c.Id
	}},
	{"config deleted on a deleted provider", codes.NotFound, "MODEL_CONFIG_NOT_FOUND", false, func(w *reWorld, _ string) string {
		p, _, c := w.reWorking(reDisabled)
		w.psql(`UPDATE chat_model_configs SET deleted = true, enabled = false WHERE id = $1`, c.Id)
		w.psql(`UPDATE ai_providers SET deleted = true, enabled = false WHERE id = $1`, p.Id)
		return c.Id
	}},
	{"provider disabled by admin", reFP, "PROVIDER_DISABLED", false, func(w *reWorld, _ string) string {
		p, _, c := w.reWorking(reDisabled)
		w.DisableProvider(p.Id)
		return c.Id
	}},
	{"provider disabled by psql", reFP, "PROVIDER_DISABLED", false, func(w *reWorld, _ string) string {
		p, _, c := w.reWorking(reDisabled)
		w.psql(`UPDATE ai_providers SET enabled = false WHERE id = $1`, p.Id)
		return c.Id
	}},
	{"provider deleted by admin", reFP, "PROVIDER_NOT_FOUND", false, func(w *reWorld, _ string) string {
		p, _, c := w.reWorking(reDisabled)
		if _, err := w.Admin.DeleteProvider(w.AsAdmin(), &resolverv1.DeleteProviderRequest{Id: p.Id}); err != nil {
			w.T.Fatal(err)
		}
		return c.Id
	}},
	{"provider deleted by psql", reFP, "PROVIDER_NOT_FOUND", false, func(w *reWorld, _ string) string {
		p, _, c := w.reWorking(reDisabled)
		w.psql(`UPDATE ai_providers SET deleted = true, enabled = false WHERE id = $1`, p.Id)
		return c.Id
	}},
	{"byok required and the owner has no key", reFP, "USER_KEY_REQUIRED", true, func(w *reWorld, _ string) string {
		_, _, c := w.reWorking(reRequired) // the central key is not a substitute
		return c.Id
	}},
	{"byok required and only another user has a key", reFP, "USER_KEY_REQUIRED", true, func(w *reWorld, _ string) string {
		p, _, c := w.reWorking(reRequired)
		w.own(w.person().Id, p.Id)
		return c.Id
	}},
	{"byok required and the owner's key is for another provider", reFP, "USER_KEY_REQUIRED", true, func(w *reWorld, owner string) string {
		p, _, c := w.reWorking(reRequired)
		other := w.Provider("re-same-type-"+reShort(), p.Type, reRequired)
		w.own(owner, other.Id)
		return c.Id
	}},
	{"byok optional and no key anywhere", reFP, "USER_KEY_REQUIRED", true, func(w *reWorld, _ string) string {
		p := w.prov("openai", reOptional)
		return w.cfg(p.Id).Id
	}},
	{"byok disabled and no key", reFP, "NO_CREDENTIALS", true, func(w *reWorld, _ string) string {
		p := w.prov("openai", reDisabled)
		return w.cfg(p.Id).Id
	}},
	{"only key disabled by admin", reFP, "NO_CREDENTIALS", true, func(w *reWorld, _ string) string {
		_, k, c := w.reWorking(reDisabled)
		w.setKeyEnabled(k.keyID, false)
		return c.Id
	}},
	{"only key disabled by psql", reFP, "NO_CREDENTIALS", true, func(w *reWorld, _ string) string {
		_, k, c := w.reWorking(reDisabled)
		w.psql(`UPDATE ai_provider_keys SET enabled = false WHERE id = $1`, k.keyID)
		return c.Id
	}},
	{"only key deleted by admin", reFP, "NO_CREDENTIALS", true, func(w *reWorld, _ string) string {
		_, k, c := w.reWorking(reDisabled)
		if _, err := w.Admin.DeleteProviderKey(w.AsAdmin(), &resolverv1.DeleteProviderKeyRequest{Id: k.keyID}); err != nil {
			w.T.Fatal(err)
		}
		return c.Id
	}},
}

// TestResolveE2EBrokenOverrides asks for every kind of broken config with every purpose: PURPOSE_CHAT
// answers with the default (or fails on a credential failure), the soft overrides answer with the
// chat's own model, PURPOSE_TITLE fails with the reason.
func TestResolveE2EBrokenOverrides(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})
	owner := w.person()
	pa := w.prov("openai", reDisabled)
	ka := w.central(pa.Id)
	own := w.cfg(pa.Id)
	chat := w.Chat(owner.Id, own.Id)
	pd := w.prov("google", reDisabled)
	kd := w.central(pd.Id)
	def := w.def(pd.Id)

	// A key that cannot be decrypted (psql overwrote the ciphertext) is a failure to read, not a rule:
	// DATA_LOSS/SECRET_UNREADABLE naming the key row (docs/CONTRACT.md §7.1), for every purpose,
	// never a fallback nor another credential, and without its cause.
	t.Run("an unreadable key is never soft", func(t *testing.T) {
		w := w.in(t)
		_, kc, cc := w.reWorking(reDisabled)
		w.psql(`UPDATE ai_provider_keys SET api_key = 'not-a-ciphertext' WHERE id = $1`, kc.keyID)
		pu, _, cu := w.reWorking(reOptional)
		ku := w.own(owner.Id, pu.Id)
		w.psql(`UPDATE user_ai_provider_keys SET api_key = 'not-a-ciphertext' WHERE user_id = $1 AND ai_provider_id = $2`, owner.Id, pu.Id)
		for id, key := range map[string]string{cc.Id: kc.keyID, cu.Id: ku.keyID} {
			for _, p := range rePurposes {
				_, err := w.res(chat.Id, id, p)
				reFail(t, err, codes.DataLoss, "SECRET_UNREADABLE", map[string]string{"key_id": key})
				if msg := reErrText(err); strings.Contains(msg, "not-a-ciphertext") || strings.Contains(msg, "ai_provider_keys") {
					t.Errorf("the SECRET_UNREADABLE error shows its cause: %s", msg)
				}
			}
		}
	})

	for _, b := range reBreaks {
		t.Run(b.name, func(t *testing.T) {
			w := w.in(t)
			id := b.make(w, owner.Id)
			for _, p := range rePurposes {
				t.Run(p.String(), func(t *testing.T) {
					w := w.in(t)
					res, err := w.res(chat.Id, id, p)
					switch {
					case p == reTitle:
						reFail(t, err, b.code, b.reason, map[string]string{"model_config_id": id})
					case p == reChat && b.cred:
						reFail(t, err, b.code, b.reason, map[string]string{"model_config_id": id})
					case p == reChat:
						reOK(t, res, err, reWant{config: def, provider: pd, cred: kd, requested: id, fallback: true, reason: b.reason})
					default:
						reOK(t, res, err, reWant{config: own, provider: pa, cred: ka, requested: id, fallback: true, reason: b.reason})
					}
				})
			}
		})
	}
}
