package resolve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/errs"
)

// hardKinds are errors a Source may return; none of them is ever a reason to fall back.
func hardKinds() map[string]error {
	return map[string]error{
		"missing scope":        errs.New(errs.MissingScope, "missing scope user_ai_provider_key:read", "scope", "user_ai_provider_key:read"),
		"database unavailable": errs.New(errs.DatabaseUnavailable, "the database is unavailable"),
		"plain":                errors.New("db down"),
		"canceled":             context.Canceled,
		"deadline":             fmt.Errorf("query: %w", context.DeadlineExceeded),
		// The Source's errors end the call as they are, even one that carries a rule's reason.
		"source says no credentials": errs.New(errs.NoCredentials, "from the source"),
	}
}

// A denied scope, a database failure, a cancelled call: never soft, for any purpose, wherever the
// read happens.
func TestResolveHardErrors(t *testing.T) {
	type setup struct {
		name     string
		purposes []Purpose // the purposes whose resolution reaches the failing read
		// build makes the rows, injects err at one read and returns the request's config id and the
		// read that fails.
		build func(w *world, err error) (uuid.UUID, read)
	}
	std := func(w *world, r, c, d *ModelConfig) {
		w.chatModel(c)
		w.makeDefault(d)
	}
	setups := []setup{
		{"snapshot", allPurposes, func(w *world, err error) (uuid.UUID, read) {
			r := w.slot(stUsable, credCentral)
			std(w, r, w.slot(stUsable, credCentral), w.slot(stUsable, credCentral))
			w.src.snapErr = err
			return r.ID, read{kind: "snapshot", id: w.src.chat.ID}
		}},
		{"the override's user key", allPurposes, func(w *world, err error) (uuid.UUID, read) {
			r := w.slot(stUsable, credUser)
			std(w, r, w.slot(stUsable, credCentral), w.slot(stUsable, credCentral))
			w.src.userErr[r.ProviderID] = err
			return r.ID, read{kind: "user", id: r.ProviderID}
		}},
		{"the override's user key, policy required", allPurposes, func(w *world, err error) (uuid.UUID, read) {
			r := w.slot(stUsable, credUserRequired)
			std(w, r, w.slot(stUsable, credCentral), w.slot(stUsable, credCentral))
			w.src.userErr[r.ProviderID] = err
			return r.ID, read{kind: "user", id: r.ProviderID}
		}},
		{"the override's central key", allPurposes, func(w *world, err error) (uuid.UUID, read) {
			r := w.slot(stUsable, credCentral)
			std(w, r, w.slot(stUsable, credCentral), w.slot(stUsable, credCentral))
			w.src.centralErr[r.ProviderID] = err
			return r.ID, read{kind: "central", id: r.ProviderID}
		}},
		{"the override's central key after no user key", allPurposes, func(w *world, err error) (uuid.UUID, read) {
			r := w.slot(stUsable, credCentral)
			r.Provider.BYOKPolicy = BYOKOptional
			std(w, r, w.slot(stUsable, credCentral), w.slot(stUsable, credCentral))
			w.src.centralErr[r.ProviderID] = err
			return r.ID, read{kind: "central", id: r.ProviderID}
		}},
		{"the override's bedrock central key", allPurposes, func(w *world, err error) (uuid.UUID, read) {
			r := w.slot(stUsable, credAmbient)
			std(w, r, w.slot(stUsable, credCentral), w.slot(stUsable, credCentral))
			w.src.centralErr[r.ProviderID] = err
			return r.ID, read{kind: "central", id: r.ProviderID}
		}},
		{"the chat model's user key, after a disabled override", softPurposes, func(w *world, err error) (uuid.UUID, read) {
			r, c := w.slot(stDisabled, credCentral), w.slot(stUsable, credUser)
			std(w, r, c, w.slot(stUsable, credCentral))
			w.src.userErr[c.ProviderID] = err
			return r.ID, read{kind: "user", id: c.ProviderID}
		}},
		{"the chat model's central key, after an override without credentials", softPurposes, func(w *world, err error) (uuid.UUID, read) {
			r, c := w.slot(stUsable, credNone), w.slot(stUsable, credCentral)
			std(w, r, c, w.slot(stUsable, credCentral))
			w.src.centralErr[c.ProviderID] = err
			return r.ID, read{kind: "central", id: c.ProviderID}
		}},
		{"the default's central key, after a disabled request", []Purpose{PurposeChat}, func(w *world, err error) (uuid.UUID, read) {
			r, d := w.slot(stDisabled, credCentral), w.slot(stUsable, credCentral)
			std(w, r, w.slot(stUsable, credCentral), d)
			w.src.centralErr[d.ProviderID] = err
			return r.ID, read{kind: "central", id: d.ProviderID}
		}},
		{"the default's user key, after a disabled override and chat model", softPurposes, func(w *world, err error) (uuid.UUID, read) {
			r, d := w.slot(stDisabled, credCentral), w.slot(stUsable, credUser)
			std(w, r, w.slot(stProviderDisabled, credCentral), d)
			w.src.userErr[d.ProviderID] = err
			return r.ID, read{kind: "user", id: d.ProviderID}
		}},
		{"the own model's central key (empty id)", allPurposes, func(w *world, err error) (uuid.UUID, read) {
			c := w.slot(stUsable, credCentral)
			std(w, nil, c, w.slot(stUsable, credCentral))
			w.src.centralErr[c.ProviderID] = err
			return uuid.Nil, read{kind: "central", id: c.ProviderID}
		}},
		{"the default's user key (empty id, own model disabled)", allPurposes, func(w *world, err error) (uuid.UUID, read) {
			d := w.slot(stUsable, credUser)
			std(w, nil, w.slot(stDisabled, credCentral), d)
			w.src.userErr[d.ProviderID] = err
			return uuid.Nil, read{kind: "user", id: d.ProviderID}
		}},
	}
	for _, s := range setups {
		for kind, injected := range hardKinds() {
			for _, p := range s.purposes {
				t.Run(fmt.Sprintf("%s/%s/%s", s.name, kind, p), func(t *testing.T) {
					w := newWorld()
					id, failing := s.build(w, injected)
					res, err := w.resolve(true, p, id)
					if err == nil || res != nil {
						t.Fatalf("Resolve = %+v, %v; want the source's error and no result", res, err)
					}
					if !errors.Is(err, injected) {
						t.Errorf("errors.Is(%v, %v) = false", err, injected)
					}
					if got, want := errs.ReasonOf(err), errs.ReasonOf(injected); got != want {
						t.Errorf("reason = %q, want %q (%v)", got, want, err)
					}
					var e *errs.Error
					if errs.Is(injected, errs.MissingScope) && errors.As(err, &e) && e.Metadata["scope"] != "user_ai_provider_key:read" {
						t.Errorf("metadata scope = %q, want it kept", e.Metadata["scope"])
					}
					// The failing read happened and was the last: nothing was tried after it.
					reads := w.src.reads
					if len(reads) == 0 || reads[len(reads)-1].kind != failing.kind || reads[len(reads)-1].id != failing.id {
						t.Errorf("reads = %+v, want the last to be the failing %+v", reads, failing)
					}
				})
			}
		}
	}
}

func TestResolveSnapshotErrors(t *testing.T) {
	for _, p := range allPurposes {
		for _, withID := range []bool{false, true} {
			t.Run(fmt.Sprintf("chat not found from the source/%s/id=%v", p, withID), func(t *testing.T) {
				w := newWorld()
				injected := errs.New(errs.ChatNotFound, "chat not found", "chat_id", w.src.chat.ID.String())
				w.src.snapErr = injected
				id := uuid.Nil
				if withID {
					id = w.slot(stUsable, credCentral).ID
				}
				res, err := w.resolve(true, p, id)
				if res != nil || !errors.Is(err, injected) || errs.ReasonOf(err) != errs.ChatNotFound {
					t.Fatalf("Resolve = %v, %v; want %v unchanged", res, err, injected)
				}
				var e *errs.Error
				if !errors.As(err, &e) || e.Metadata["chat_id"] != w.src.chat.ID.String() {
					t.Errorf("metadata chat_id lost: %v", err)
				}
				if len(w.src.reads) != 1 {
					t.Errorf("reads = %+v, want the snapshot only", w.src.reads)
				}
			})
			t.Run(fmt.Sprintf("unknown chat/%s/id=%v", p, withID), func(t *testing.T) {
				w := newWorld()
				c := w.slot(stUsable, credCentral)
				w.chatModel(c)
				w.makeDefault(c)
				id := uuid.Nil
				if withID {
					id = c.ID
				}
				res, err := Resolve(context.Background(), w.src, Options{AllowBYOK: true},
					Request{ChatID: uuid.New(), ModelConfigID: id, Purpose: p})
				if res != nil || errs.ReasonOf(err) != errs.ChatNotFound {
					t.Fatalf("Resolve = %v, %v; want CHAT_NOT_FOUND", res, err)
				}
			})
		}
	}
}

func TestResolveInvalidPurpose(t *testing.T) {
	for _, p := range []Purpose{PurposeUnspecified, -1, PurposeCompaction + 1, 99} {
		for _, withID := range []bool{false, true} {
			t.Run(fmt.Sprintf("purpose=%d/id=%v", int(p), withID), func(t *testing.T) {
				w := newWorld()
				c := w.slot(stUsable, credCentral)
				w.chatModel(c)
				id := uuid.Nil
				if withID {
					id = c.ID
				}
				res, err := w.resolve(true, p, id)
				if res != nil || errs.ReasonOf(err) != errs.InvalidArgument {
					t.Fatalf("Resolve = %v, %v; want INVALID_ARGUMENT", res, err)
				}
				var e *errs.Error
				if !errors.As(err, &e) || !slices.ContainsFunc(e.Violations, func(v errs.FieldViolation) bool { return v.Field == "purpose" }) {
					t.Errorf("error %v has no field violation for purpose", err)
				}
				if len(w.src.reads) != 0 {
					t.Errorf("the source was read: %+v", w.src.reads)
				}
			})
		}
	}
}

// Keys are read once per provider per resolution, even when a fallback lands on the same provider.
func TestResolveReadsKeysOncePerProvider(t *testing.T) {
	type counts struct{ user, central int }
	tests := []struct {
		name     string
		purposes []Purpose
		// build returns the request's config id and the providers whose reads are counted.
		build    func(w *world) (uuid.UUID, []*Provider)
		wantErr  errs.Reason
		want     []counts // by the providers build returned
		fallback bool
	}{
		{"override needs a user key the owner lacks, chat model on the same provider", softPurposes,
			func(w *world) (uuid.UUID, []*Provider) {
				p := w.provider("openai", BYOKRequired)
				w.centralKey(p)
				r, c := w.config(p), w.config(p)
				w.chatModel(c)
				w.makeDefault(w.config(w.provider("anthropic", BYOKDisabled)))
				return r.ID, []*Provider{p}
			}, errs.UserKeyRequired, []counts{{1, 0}}, false},
		{"optional policy, no keys at all, same provider", softPurposes,
			func(w *world) (uuid.UUID, []*Provider) {
				p := w.provider("openai", BYOKOptional)
				r, c := w.config(p), w.config(p)
				w.chatModel(c)
				return r.ID, []*Provider{p}
			}, errs.UserKeyRequired, []counts{{1, 1}}, false},
		{"override and default on the same provider, chat model disabled", softPurposes,
			func(w *world) (uuid.UUID, []*Provider) {
				p := w.provider("openai", BYOKRequired)
				r, c, d := w.config(p), w.config(p), w.config(p)
				c.Enabled = false
				w.chatModel(c)
				w.makeDefault(d)
				return r.ID, []*Provider{p}
			}, errs.UserKeyRequired, []counts{{1, 0}}, false},
		{"override without a user key, chat model on another provider", softPurposes,
			func(w *world) (uuid.UUID, []*Provider) {
				p, q := w.provider("openai", BYOKRequired), w.provider("openai", BYOKDisabled)
				w.centralKey(q)
				r, c := w.config(p), w.config(q)
				w.chatModel(c)
				return r.ID, []*Provider{p, q}
			}, "", []counts{{1, 0}, {0, 1}}, true},
		{"chat: disabled request, default on the same provider", []Purpose{PurposeChat},
			func(w *world) (uuid.UUID, []*Provider) {
				p := w.provider("google", BYOKOptional)
				w.userKey(p)
				r, d := w.config(p), w.config(p)
				r.Enabled = false
				w.makeDefault(d)
				return r.ID, []*Provider{p}
			}, "", []counts{{1, 0}}, true},
	}
	for _, tt := range tests {
		for _, p := range tt.purposes {
			t.Run(fmt.Sprintf("%s/%s", tt.name, p), func(t *testing.T) {
				w := newWorld()
				id, providers := tt.build(w)
				res, err := w.resolve(true, p, id)
				if tt.wantErr != "" {
					if res != nil || errs.ReasonOf(err) != tt.wantErr {
						t.Errorf("Resolve = %v, %v; want %s", res, err, tt.wantErr)
					}
				} else if err != nil || !res.Fallback {
					t.Errorf("Resolve = %+v, %v; want a fallback", res, err)
				}
				for i, pr := range providers {
					got := counts{w.src.count("user", pr.ID), w.src.count("central", pr.ID)}
					if got != tt.want[i] {
						t.Errorf("provider %d: reads (user, central) = %v, want %v", i, got, tt.want[i])
					}
				}
			})
		}
	}
}

// Keys are found by provider id, never by provider type.
func TestResolveKeysByProviderID(t *testing.T) {
	w := newWorld()
	mine, other := w.provider("openai", BYOKOptional), w.provider("openai", BYOKOptional)
	userKey := w.userKey(mine)
	otherCentral := w.centralKey(other)
	a, b := w.config(mine), w.config(other)
	w.chatModel(a)
	for _, tc := range []struct {
		cfg  *ModelConfig
		want CredentialSource
		key  *Key
	}{{a, SourceUser, userKey}, {b, SourceCentral, otherCentral}} {
		res, err := w.resolve(true, PurposeTitle, tc.cfg.ID)
		if err != nil || res.Credential.Source != tc.want || res.Credential.KeyID != tc.key.ID {
			t.Errorf("config %s: Resolve = %+v, %v; want %s key %s", tc.cfg.ID, res, err, tc.want, tc.key.ID)
		}
	}
}

// Errors name the ids and the reason involved (docs/CONTRACT.md §4).
func TestResolveErrorMetadata(t *testing.T) {
	tests := []struct {
		name    string
		purpose Purpose
		r       *slotSpec
		noDef   bool
		defIsR  bool
		reason  errs.Reason
		meta    func(r *ModelConfig) map[string]string
	}{
		{"title disabled", PurposeTitle, sl(stDisabled, credCentral), false, false, errs.ModelConfigDisabled, idOnly},
		{"title missing", PurposeTitle, sl(stMissing, credCentral), false, false, errs.ModelConfigNotFound, idOnly},
		{"title deleted", PurposeTitle, sl(stDeleted, credCentral), false, false, errs.ModelConfigNotFound, idOnly},
		{"title provider missing", PurposeTitle, sl(stProviderMissing, credCentral), false, false, errs.ProviderNotFound, idAndProvider},
		{"title provider deleted", PurposeTitle, sl(stProviderDeleted, credCentral), false, false, errs.ProviderNotFound, idAndProvider},
		{"title provider disabled", PurposeTitle, sl(stProviderDisabled, credCentral), false, false, errs.ProviderDisabled, idAndProvider},
		{"title host not allowed", PurposeTitle, sl(stHostNotAllowed, credAmbient), false, false, errs.ProviderHostNotAllowed, idProviderAndHost},
		{"title user key required", PurposeTitle, sl(stUsable, credUserRequired), false, false, errs.UserKeyRequired, idAndProvider},
		{"title no credentials", PurposeTitle, sl(stUsable, credNone), false, false, errs.NoCredentials, idAndProvider},
		{"chat no credentials", PurposeChat, sl(stUsable, credNone), false, false, errs.NoCredentials, idAndProvider},
		{"chat disabled, no default", PurposeChat, sl(stDisabled, credCentral), true, false, errs.NoUsableModelConfig,
			requestedReason(errs.ModelConfigDisabled)},
		{"chat missing, no default", PurposeChat, sl(stMissing, credCentral), true, false, errs.NoUsableModelConfig,
			requestedReason(errs.ModelConfigNotFound)},
		{"chat provider disabled, it is the default", PurposeChat, sl(stProviderDisabled, credCentral), true, true, errs.NoUsableModelConfig,
			requestedReason(errs.ProviderDisabled)},
		{"chat host not allowed, no default", PurposeChat, sl(stHostNotAllowed, credCentral), true, false, errs.NoUsableModelConfig,
			requestedReason(errs.ProviderHostNotAllowed)},
		{"chat provider missing, default disabled", PurposeChat, sl(stProviderMissing, credCentral), false, false, errs.NoUsableModelConfig,
			requestedReason(errs.ProviderNotFound)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			r := w.slot(tt.r.state, tt.r.cred)
			w.chatModel(w.slot(stUsable, credCentral))
			switch {
			case tt.defIsR:
				w.makeDefault(r)
			case !tt.noDef:
				w.makeDefault(w.slot(stDisabled, credCentral))
			}
			res, err := w.resolve(true, tt.purpose, r.ID)
			var e *errs.Error
			if res != nil || !errors.As(err, &e) || e.Reason != tt.reason {
				t.Fatalf("Resolve = %v, %v; want %s", res, err, tt.reason)
			}
			for k, v := range tt.meta(r) {
				if e.Metadata[k] != v {
					t.Errorf("metadata[%s] = %q, want %q (all: %v)", k, e.Metadata[k], v, e.Metadata)
				}
			}
		})
	}
}

func idOnly(r *ModelConfig) map[string]string {
	return map[string]string{"model_config_id": r.ID.String()}
}

func idAndProvider(r *ModelConfig) map[string]string {
	return map[string]string{"model_config_id": r.ID.String(), "provider_id": r.ProviderID.String()}
}

func idProviderAndHost(r *ModelConfig) map[string]string {
	return map[string]string{"model_config_id": r.ID.String(), "provider_id": r.ProviderID.String(), "host": "collector.elsewhere.test"}
}

func requestedReason(why errs.Reason) func(r *ModelConfig) map[string]string {
	return func(r *ModelConfig) map[string]string {
		return map[string]string{"model_config_id": r.ID.String(), "requested_reason": string(why)}
	}
}
