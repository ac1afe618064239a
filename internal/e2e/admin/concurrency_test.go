package admin_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/resolverd/resolverd/internal/testenv"
	resolverv1 "github.com/resolverd/resolverd/proto/resolver/v1"
)

// adCleanFailure returns "" when err is a clean refusal (a status with a resolver.v1 ErrorInfo and
// not INTERNAL), or what is wrong with it.
func adCleanFailure(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Sprintf("not a status: %v", err)
	}
	info := testenv.ErrorInfo(st)
	switch {
	case st.Code() == codes.Internal || st.Code() == codes.Unknown:
		return fmt.Sprintf("%s: %s", st.Code(), st.Message())
	case info == nil || info.GetDomain() != "resolver.v1":
		return fmt.Sprintf("%s without a resolver.v1 ErrorInfo: %s", st.Code(), st.Message())
	case info.GetReason() == "INTERNAL":
		return "reason INTERNAL: " + st.Message()
	}
	return ""
}

// TestAdminE2EConcurrentDefault: 20 callers make 20 different configs the default at once; every
// call succeeds or fails cleanly, and exactly one live default remains, one whose call succeeded.
func TestAdminE2EConcurrentDefault(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	p := w.Provider("conc-default", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	for round := range 3 {
		t.Run(fmt.Sprintf("round-%d", round), func(t *testing.T) {
			w := adWorld(t, e)
			initial := w.Config(p.Id, fmt.Sprintf("conc-initial-%d", round), true)
			ids := make([]string, 20)
			for i := range ids {
				ids[i] = w.Config(p.Id, fmt.Sprintf("conc-%d-%02d", round, i), false).Id
			}
			errs := make([]error, len(ids))
			results := make([]*resolverv1.ModelConfig, len(ids))
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i], errs[i] = a.UpdateModelConfig(e.AsAdmin(), &resolverv1.UpdateModelConfigRequest{Id: id, IsDefault: proto.Bool(true)})
				}()
			}
			close(start)
			wg.Wait()

			var succeeded []string
			for i, err := range errs {
				if err != nil {
					if bad := adCleanFailure(err); bad != "" {
						t.Errorf("UpdateModelConfig(%s, is_default) failed uncleanly: %s", ids[i], bad)
					}
					continue
				}
				if !results[i].GetIsDefault() {
					t.Errorf("UpdateModelConfig(%s, is_default) answered is_default=false", ids[i])
				}
				succeeded = append(succeeded, ids[i])
			}
			if len(succeeded) == 0 {
				t.Fatalf("no call succeeded: %v", errs)
			}
			defaults := adLiveDefaults(t, e)
			if len(defaults) != 1 {
				t.Fatalf("%d live defaults after the race, want exactly 1: %v", len(defaults), defaults)
			}
			if n := adCount(t, e, `SELECT count(*) FROM chat_model_configs WHERE is_default AND NOT deleted`); n != 1 {
				t.Fatalf("%d stored live defaults, want 1", n)
			}
			if !slices.Contains(succeeded, defaults[0]) {
				t.Errorf("the default %s is not one whose call succeeded (initial %s)", defaults[0], initial.Id)
			}
		})
	}
}

// TestAdminE2EConcurrentRotate: 10 concurrent RotateProviderKey on one provider leave exactly one
// enabled key (docs/CONTRACT.md §3: the new key is added and every other key disabled in one transaction).
func TestAdminE2EConcurrentRotate(t *testing.T) {
	t.Parallel()
	w := testenv.NewWorld(t, testenv.Options{})
	e, a := w.Env, w.Admin
	p := w.Provider("conc-rotate", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	other := w.Provider("conc-other", "openai", resolverv1.ByokPolicy_BYOK_POLICY_DISABLED)
	w.CentralKey(p.Id, "sk-conc-initial")
	otherKey := w.CentralKey(other.Id, "sk-conc-other")
	for round := range 3 {
		t.Run(fmt.Sprintf("round-%d", round), func(t *testing.T) {
			const n = 10
			errs := make([]error, n)
			results := make([]*resolverv1.ProviderKey, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i], errs[i] = a.RotateProviderKey(e.AsAdmin(), &resolverv1.RotateProviderKeyRequest{ProviderId: p.Id, ApiKey: fmt.Sprintf("sk-conc-%d-%d", round, i)})
				}()
			}
			close(start)
			wg.Wait()

			var succeeded []string
			for i, err := range errs {
				if err != nil {
					if bad := adCleanFailure(err); bad != "" {
						t.Errorf("RotateProviderKey #%d failed uncleanly: %s", i, bad)
					}
					continue
				}
				if !results[i].GetEnabled() {
					t.Errorf("RotateProviderKey #%d answered a disabled key", i)
				}
				succeeded = append(succeeded, results[i].GetId())
			}
			if len(succeeded) == 0 {
				t.Fatalf("no rotation succeeded: %v", errs)
			}
			var enabled []string
			for id, k := range adListKeys(t, e, p.Id) {
				if k.GetEnabled() {
					enabled = append(enabled, id)
				}
			}
			if len(enabled) != 1 {
				t.Fatalf("%d enabled keys after %d concurrent rotations (%d succeeded), want exactly 1: %v", len(enabled), n, len(succeeded), enabled)
			}
			if !slices.Contains(succeeded, enabled[0]) {
				t.Errorf("the enabled key %s is not one a successful rotation returned", enabled[0])
			}
			if k := adListKeys(t, e, other.Id)[otherKey.Id]; !proto.Equal(k, otherKey) {
				t.Errorf("another provider's key changed: %v → %v", otherKey, k)
			}
		})
	}
}
