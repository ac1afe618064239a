package resolve

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/resolverd/resolverd/internal/errs"
	"github.com/resolverd/resolverd/pkg/secret"
)

// countingOpener opens to plain, or fails with err, and counts its calls.
type countingOpener struct {
	plain string
	err   error
	n     atomic.Int32
}

func (o *countingOpener) open(context.Context) (secret.String, string, error) {
	o.n.Add(1)
	if o.err != nil {
		return secret.String{}, "", o.err
	}
	return secret.New(o.plain), "fp-" + o.plain, nil
}

func unreadable(id uuid.UUID) error {
	return errs.New(errs.SecretUnreadable, "the stored key does not open in its place", "key_id", id.String())
}

// Only the key a resolution answers with is opened: the owner's key when BYOK answers, and neither
// key of a provider the resolution does not settle on.
func TestOnlyTheChosenKeyIsOpened(t *testing.T) {
	w := newWorld()
	p := w.provider("openai", BYOKOptional)
	c := w.config(p)
	w.chatModel(c)
	user, central := &countingOpener{plain: "user"}, &countingOpener{plain: "central"}
	w.src.userKeys[[2]uuid.UUID{w.owner(), p.ID}] = SealedKey(uuid.New(), user.open)
	w.src.centralKeys[p.ID] = []*Key{SealedKey(uuid.New(), central.open)}
	res, err := w.resolve(true, PurposeChat, uuid.Nil)
	if err != nil || res.Credential.Source != SourceUser || res.Credential.Secret.Reveal() != "user" || res.Credential.Fingerprint != "fp-user" {
		t.Fatalf("resolve: %+v, %v", res, err)
	}
	if user.n.Load() != 1 || central.n.Load() != 0 {
		t.Fatalf("opened user=%d central=%d times, want 1 and 0", user.n.Load(), central.n.Load())
	}
	// A second resolution reads the same (cached) key and does not open it again.
	if _, err := w.resolve(true, PurposeChat, uuid.Nil); err != nil || user.n.Load() != 1 {
		t.Fatalf("second resolution: %v; the key was opened %d times, want once", err, user.n.Load())
	}
}

// A key that does not open ends the resolution with its error: no fallback to another key of the
// provider, nor (for a soft override) to the chat's own model; and other providers are unaffected.
func TestAnUnreadableKeyFailsOnlyTheResolutionsThatChooseIt(t *testing.T) {
	w := newWorld()
	bad, good := w.provider("openai", BYOKDisabled), w.provider("anthropic", BYOKOptional)
	badCfg, goodCfg := w.config(bad), w.config(good)
	w.chatModel(goodCfg)
	badID := uuid.New()
	broken := &countingOpener{err: unreadable(badID)}
	w.src.centralKeys[bad.ID] = []*Key{SealedKey(badID, broken.open)}
	goodKey := w.centralKey(good)

	for _, p := range []Purpose{PurposeSubagent, PurposePersonalOverride, PurposeCompaction, PurposeTitle} {
		res, err := w.resolve(true, p, badCfg.ID)
		if !errs.Is(err, errs.SecretUnreadable) || res != nil {
			t.Fatalf("%s override on the unreadable key: %+v, %v; want SECRET_UNREADABLE and no fallback", p, res, err)
		}
	}
	if n := broken.n.Load(); n != 1 {
		t.Errorf("the unreadable key was tried %d times, want once: the failure stays with the key", n)
	}
	res, err := w.resolve(true, PurposeChat, uuid.Nil)
	if err != nil || res.Credential.KeyID != goodKey.ID {
		t.Fatalf("the chat's own model on another provider: %+v, %v", res, err)
	}
	// The chat's own model on the bad provider: PURPOSE_CHAT does not fall back to the default either.
	w.makeDefault(goodCfg)
	w.chatModel(badCfg)
	if _, err := w.resolve(true, PurposeChat, uuid.Nil); !errs.Is(err, errs.SecretUnreadable) {
		t.Fatalf("the chat's own model with an unreadable key: %v", err)
	}
}

// A denied scope on the user-key table is refused before the central key (however damaged) is
// read or opened.
func TestADeniedScopeComesBeforeAnyOpening(t *testing.T) {
	w := newWorld()
	p := w.provider("openai", BYOKOptional)
	w.chatModel(w.config(p))
	broken := &countingOpener{err: unreadable(uuid.New())}
	w.src.centralKeys[p.ID] = []*Key{SealedKey(uuid.New(), broken.open)}
	w.src.userErr[p.ID] = errs.New(errs.MissingScope, "missing scope", "scope", "user_ai_provider_key:read")
	if _, err := w.resolve(true, PurposeChat, uuid.Nil); !errs.Is(err, errs.MissingScope) {
		t.Fatalf("want MISSING_SCOPE, got %v", err)
	}
	if broken.n.Load() != 0 {
		t.Fatal("a key was opened before the scope check refused the call")
	}
}

// Concurrent first opens of a shared key agree, and the key keeps one value.
func TestAKeyIsOpenedOnceForAll(t *testing.T) {
	o := &countingOpener{plain: "shared"}
	k := SealedKey(uuid.New(), o.open)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			s, fp, err := k.Open(context.Background())
			if err != nil || s.Reveal() != "shared" || fp != "fp-shared" {
				t.Errorf("open: %q %q %v", s.Reveal(), fp, err)
			}
		})
	}
	wg.Wait()
	before := o.n.Load()
	if _, _, err := k.Open(context.Background()); err != nil || o.n.Load() != before {
		t.Fatalf("an opened key was opened again (%d → %d): %v", before, o.n.Load(), err)
	}
	if _, _, err := (&Key{ID: uuid.New()}).Open(context.Background()); err == nil {
		t.Fatal("a key without a value opened")
	}
}

// A failure other than SECRET_UNREADABLE (the fingerprint key could not be read) is not kept: the
// next resolution tries again and succeeds.
func TestATransientFailureIsTriedAgain(t *testing.T) {
	o := &countingOpener{plain: "later", err: errs.New(errs.DatabaseUnavailable, "the database is unavailable")}
	k := SealedKey(uuid.New(), o.open)
	if _, _, err := k.Open(context.Background()); !errs.Is(err, errs.DatabaseUnavailable) {
		t.Fatalf("first open: %v", err)
	}
	o.err = nil
	if s, _, err := k.Open(context.Background()); err != nil || s.Reveal() != "later" || o.n.Load() != 2 {
		t.Fatalf("second open: %q, %v after %d tries", s.Reveal(), err, o.n.Load())
	}
}

// BenchmarkWarmKeyOpen is what a warm resolution pays for the key it answers with: the key was
// opened once, when first chosen.
func BenchmarkWarmKeyOpen(b *testing.B) {
	o := &countingOpener{plain: "warm"}
	k := SealedKey(uuid.New(), o.open)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := k.Open(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
