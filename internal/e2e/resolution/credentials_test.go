package resolution_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/rbac"
	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// TestResolveE2ECredentials covers docs/CONTRACT.md §2.2 with --allow-byok on.
func TestResolveE2ECredentials(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{})

	t.Run("byok optional with the owner's key uses it", func(t *testing.T) {
		w := w.in(t)
		s := w.reSetup("openai", reOptional)
		w.central(s.p.Id)
		w.own(w.person().Id, s.p.Id) // another user's key is never used
		mine := w.own(s.owner.Id, s.p.Id)
		s.ok(w, mine)
		// PutUserProviderKey replaces it: the next resolution has the new key and fingerprint.
		replaced := w.own(s.owner.Id, s.p.Id)
		if replaced.fp == mine.fp {
			t.Errorf("the replaced key kept its fingerprint")
		}
		s.ok(w, replaced)
	})

	t.Run("byok optional without the owner's key uses the central key", func(t *testing.T) {
		w := w.in(t)
		s := w.reSetup("openai", reOptional)
		k := w.central(s.p.Id)
		w.own(w.person().Id, s.p.Id)
		s.ok(w, k)
		// The owner's key appears, then is deleted again.
		mine := w.own(s.owner.Id, s.p.Id)
		s.ok(w, mine)
		if _, err := w.Admin.DeleteUserProviderKey(w.AsAdmin(), &resolverv1.DeleteUserProviderKeyRequest{Id: mine.keyID}); err != nil {
			t.Fatal(err)
		}
		s.ok(w, k)
	})

	t.Run("byok required", func(t *testing.T) {
		w := w.in(t)
		s := w.reSetup("anthropic", reRequired)
		w.central(s.p.Id)
		s.fail(w, "USER_KEY_REQUIRED")
		mine := w.own(s.owner.Id, s.p.Id)
		s.ok(w, mine)
		// psql relaxes the policy: the owner's key still wins.
		w.psql(`UPDATE ai_providers SET byok_policy = 'optional' WHERE id = $1`, s.p.Id)
		s.ok(w, mine)
	})

	t.Run("byok disabled ignores the owner's key", func(t *testing.T) {
		w := w.in(t)
		s := w.reSetup("anthropic", reOptional)
		k := w.central(s.p.Id)
		mine := w.own(s.owner.Id, s.p.Id)
		s.ok(w, mine)
		w.psql(`UPDATE ai_providers SET byok_policy = 'disabled' WHERE id = $1`, s.p.Id)
		s.ok(w, k)
	})

	t.Run("bedrock", func(t *testing.T) {
		w := w.in(t)
		s := w.reSetup("bedrock", reDisabled)
		s.ok(w, reAmbient)
		k := w.central(s.p.Id)
		s.ok(w, k)
		w.setKeyEnabled(k.keyID, false)
		s.ok(w, reAmbient)

		opt := w.reSetup("bedrock", reOptional)
		opt.ok(w, reAmbient)
		mine := w.own(opt.owner.Id, opt.p.Id)
		opt.ok(w, mine)

		req := w.reSetup("bedrock", reRequired)
		req.fail(w, "USER_KEY_REQUIRED")
	})

	t.Run("no keys", func(t *testing.T) {
		w := w.in(t)
		w.reSetup("openai", reDisabled).fail(w, "NO_CREDENTIALS")
		w.reSetup("openai-compat", reOptional).fail(w, "USER_KEY_REQUIRED")
		w.reSetup("vercel", reRequired).fail(w, "USER_KEY_REQUIRED")
	})

	t.Run("the oldest enabled central key wins", func(t *testing.T) {
		w := w.in(t)
		s := w.reSetup("openai", reDisabled)
		// An older key added disabled never answers.
		off, err := w.Admin.AddProviderKey(w.AsAdmin(), &resolverv1.AddProviderKeyRequest{ProviderId: s.p.Id, ApiKey: w.newKey("off"), Enabled: proto.Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		k1 := w.central(s.p.Id)
		k2 := w.central(s.p.Id)
		s.ok(w, k1)
		w.setKeyEnabled(k1.keyID, false)
		s.ok(w, k2)
		k3 := w.central(s.p.Id)
		s.ok(w, k2)
		w.setKeyEnabled(k1.keyID, true)
		s.ok(w, k1)
		// psql backdates the newest key: created_at decides.
		w.psql(`UPDATE ai_provider_keys SET created_at = now() - interval '1 day' WHERE id = $1`, k3.keyID)
		s.ok(w, k3)
		// Same created_at: the smaller id wins.
		w.psql(`UPDATE ai_provider_keys SET created_at = '2020-01-01T00:00:00Z' WHERE id = ANY($1::uuid[])`, []string{k1.keyID, k2.keyID, k3.keyID})
		first := k1
		for _, k := range []reCred{k2, k3} {
			if k.keyID < first.keyID {
				first = k
			}
		}
		s.ok(w, first)
		// Rotation disables every other key, the disabled older one included.
		k4 := w.rotate(s.p.Id)
		s.ok(w, k4)
		list, err := w.Admin.ListProviderKeys(w.AsAdmin(), &resolverv1.ListProviderKeysRequest{ProviderId: s.p.Id})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range list.GetKeys() {
			if k.GetEnabled() != (k.GetId() == k4.keyID) {
				t.Errorf("after rotation key %s (off key %s) enabled=%v", k.GetId(), off.GetId(), k.GetEnabled())
			}
		}
		if _, err := w.Admin.DeleteProviderKey(w.AsAdmin(), &resolverv1.DeleteProviderKeyRequest{Id: k4.keyID}); err != nil {
			t.Fatal(err)
		}
		s.fail(w, "NO_CREDENTIALS")
	})

	t.Run("rotation under load never shows both keys or neither", func(t *testing.T) {
		w := w.in(t)
		s := w.reSetup("openai", reDisabled)
		var mu sync.Mutex
		fps, seen := map[string]string{}, map[string]string{} // api key → fingerprint: seeded, answered
		k := w.central(s.p.Id)
		fps[k.apiKey] = k.fp
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					res, err := w.res(s.chat.Id, "", reTitle)
					if err != nil {
						t.Errorf("a resolution during rotation failed: %v", reErrText(err))
						return
					}
					c := res.GetCredential()
					mu.Lock()
					_, known := fps[c.GetApiKey()]
					seen[c.GetApiKey()] = c.GetFingerprint()
					mu.Unlock()
					if !known || c.GetSource() != resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL {
						t.Errorf("a resolution during rotation answered an unknown key (key %s, source %v)", c.GetKeyId(), c.GetSource())
						return
					}
				}
			})
		}
		for range 15 {
			key := w.newKey("rotated")
			mu.Lock()
			fps[key] = "" // resolutions may answer it once committed, before RotateProviderKey returns
			mu.Unlock()
			r, err := w.Admin.RotateProviderKey(w.AsAdmin(), &resolverv1.RotateProviderKeyRequest{ProviderId: s.p.Id, ApiKey: key})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			fps[key] = r.GetFingerprint()
			mu.Unlock()
			k = reCred{resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL, r.GetId(), key, r.GetFingerprint()}
			s.ok(w, k)
		}
		close(stop)
		wg.Wait()
		if len(seen) < 2 {
			t.Errorf("the resolutions saw %d keys during 15 rotations", len(seen))
		}
		for key, fp := range seen {
			if fp != fps[key] {
				t.Errorf("a resolution answered fingerprint %s for a key whose RotateProviderKey fingerprint is %s", fp, fps[key])
			}
		}
	})

	t.Run("the fingerprint is a stable keyed digest of the trimmed secret", func(t *testing.T) {
		w := w.in(t)
		shared := w.newKey("shared")
		s1 := w.reSetup("openai", reDisabled)
		k := w.CentralKey(s1.p.Id, "  "+shared+"\t\n")
		s2 := w.reSetup("anthropic", reOptional)
		u := w.UserKey(s2.owner.Id, s2.p.Id, shared)
		if k.Fingerprint != u.Fingerprint {
			t.Errorf("one secret, two fingerprints: %s (central) and %s (user)", k.Fingerprint, u.Fingerprint)
		}
		sum := sha256.Sum256([]byte(shared))
		if plain := hex.EncodeToString(sum[:]); strings.Contains(plain, strings.ToLower(k.Fingerprint)) {
			t.Errorf("fingerprint %s is a slice of the unkeyed SHA-256 of the secret", k.Fingerprint)
		}
		for range 2 {
			s1.ok(w, reCred{resolverv1.CredentialSource_CREDENTIAL_SOURCE_CENTRAL, k.Id, shared, k.Fingerprint})
			s2.ok(w, reCred{resolverv1.CredentialSource_CREDENTIAL_SOURCE_USER, u.Id, shared, u.Fingerprint})
		}
	})

	t.Run("keys are found by provider id, not type", func(t *testing.T) {
		w := w.in(t)
		owner := w.person()
		p1 := w.prov("openai", reOptional)
		p2 := w.prov("openai", reOptional)
		c1, c2 := w.cfg(p1.Id), w.cfg(p2.Id)
		k1, k2 := w.central(p1.Id), w.central(p2.Id)
		chat := w.Chat(owner.Id, c1.Id)
		for _, p := range rePurposes {
			res, err := w.res(chat.Id, c2.Id, p)
			reOK(t, res, err, reWant{config: c2, provider: p2, cred: k2, requested: c2.Id})
		}
		res, err := w.res(chat.Id, "", reChat)
		reOK(t, res, err, reWant{config: c1, provider: p1, cred: k1, requested: c1.Id})
		// The owner's key for p1 is not a key for p2.
		u1 := w.own(owner.Id, p1.Id)
		res, err = w.res(chat.Id, c1.Id, reChat)
		reOK(t, res, err, reWant{config: c1, provider: p1, cred: u1, requested: c1.Id})
		res, err = w.res(chat.Id, c2.Id, reTitle)
		reOK(t, res, err, reWant{config: c2, provider: p2, cred: k2, requested: c2.Id})
		// p2 loses its central key: p1's keys (central and the owner's) are not used for it.
		w.setKeyEnabled(k2.keyID, false)
		_, err = w.res(chat.Id, c2.Id, reTitle)
		reFail(t, err, reFP, "USER_KEY_REQUIRED", map[string]string{"provider_id": p2.Id})
		w.psql(`UPDATE ai_providers SET byok_policy = 'disabled' WHERE id = $1`, p2.Id)
		_, err = w.res(chat.Id, c2.Id, reTitle)
		reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": p2.Id})
	})

	t.Run("deleting the owner removes their keys", func(t *testing.T) {
		w := w.in(t)
		s := w.reSetup("anthropic", reRequired)
		w.central(s.p.Id)
		s.ok(w, w.own(s.owner.Id, s.p.Id))
		if _, err := w.Admin.DeleteUser(w.AsAdmin(), &resolverv1.DeleteUserRequest{Id: s.owner.Id}); err != nil {
			t.Fatal(err)
		}
		s.fail(w, "USER_KEY_REQUIRED")

		// The same when psql soft-deletes the user.
		s2 := w.reSetup("anthropic", reRequired)
		s2.ok(w, w.own(s2.owner.Id, s2.p.Id))
		w.psql(`UPDATE users SET deleted = true WHERE id = $1`, s2.owner.Id)
		s2.fail(w, "USER_KEY_REQUIRED")
	})
}

// TestResolveE2ECredentialsDenyBYOK: with --allow-byok off no user key is ever used or read.
func TestResolveE2ECredentialsDenyBYOK(t *testing.T) {
	t.Parallel()
	w := reNew(t, testenv.Options{DenyBYOK: true})
	var noUserKeyScope []rbac.Scope
	for _, s := range rbac.WorkerScopes {
		if s != rbac.UserAIProviderKeyRead {
			noUserKeyScope = append(noUserKeyScope, s)
		}
	}
	restricted := w.As(w.Token(t, "re-no-user-key-read", noUserKeyScope...))

	for _, policy := range []resolverv1.ByokPolicy{reDisabled, reOptional, reRequired} {
		t.Run(policy.String(), func(t *testing.T) {
			w := w.in(t)
			// The owner holds a key, yet the central key answers.
			s := w.reSetup("anthropic", policy)
			w.own(s.owner.Id, s.p.Id)
			k := w.central(s.p.Id)
			s.ok(w, k)
			for _, p := range rePurposes {
				res, err := w.call(restricted, s.chat.Id, s.cfg.Id, p)
				reOK(t, res, err, reWant{config: s.cfg, provider: s.p, cred: k, requested: s.cfg.Id})
			}
			// Without a central key: NO_CREDENTIALS, never the owner's key nor USER_KEY_REQUIRED.
			w.setKeyEnabled(k.keyID, false)
			s.fail(w, "NO_CREDENTIALS")
			_, err := w.call(restricted, s.chat.Id, "", reChat)
			reFail(t, err, reFP, "NO_CREDENTIALS", map[string]string{"provider_id": s.p.Id})

			b := w.reSetup("bedrock", policy)
			w.own(b.owner.Id, b.p.Id)
			b.ok(w, reAmbient)
		})
	}
}
