package validate

// kustomization.yaml: it lists every manifest, and kustomize builds it.

import (
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

func readKustomization(t *testing.T) ktypes.Kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(baseDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k ktypes.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	return k
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	k := readKustomization(t)
	if k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		t.Errorf("kustomization.yaml: apiVersion/kind %s/%s", k.APIVersion, k.Kind)
	}
	if len(k.CommonLabels) > 0 {
		t.Errorf("commonLabels also rewrites selectors, NetworkPolicy peers included: use labels with includeSelectors: false")
	}
	if k.Namespace != "" {
		t.Errorf("namespace %q: the base is namespace-free", k.Namespace)
	}
	listed := map[string]bool{}
	for _, r := range k.Resources {
		if listed[r] {
			t.Errorf("resource %s listed twice", r)
		}
		listed[r] = true
		if _, err := os.Stat(filepath.Join(baseDir, r)); err != nil {
			t.Errorf("resource %s: %v", r, err)
		}
	}
	for _, f := range manifestFiles(t) {
		if !listed[f] {
			t.Errorf("%s is in the base directory but not in kustomization.yaml resources", f)
		}
	}
	var labelled bool
	for _, l := range k.Labels {
		if l.Pairs[appLabel] == appName {
			labelled = true
			if l.IncludeSelectors {
				t.Errorf("labels with includeSelectors: true rewrites selectors (NetworkPolicy peers included)")
			}
		}
	}
	if !labelled {
		t.Errorf("kustomization.yaml does not label everything %s=%s", appLabel, appName)
	}
}

// TestKustomizeBuild runs kustomize (the library behind `kubectl apply -k`) on the base and
// checks that what would be applied is what the files say: same objects, labels on everything,
// selectors untouched.
func TestKustomizeBuild(t *testing.T) {
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	built, err := decodeDocuments("kustomize build", out)
	if err != nil {
		t.Fatalf("the kustomize output does not decode strictly: %v", err)
	}
	raw := loadBase(t)
	if len(built) != len(raw) {
		t.Fatalf("kustomize build produced %d objects, the files hold %d", len(built), len(raw))
	}
	for _, o := range built {
		if objectMeta(o.obj).Labels[appLabel] != appName {
			t.Errorf("built %s: no %s label", o, appLabel)
		}
	}
	// Selectors are written in the manifests; the build must not have changed any of them.
	np := only[*networkingv1.NetworkPolicy](t, built)
	rawNP := only[*networkingv1.NetworkPolicy](t, raw)
	if !jsonEqual(np.Spec, rawNP.Spec) {
		t.Errorf("kustomize changed the NetworkPolicy spec (selectors?):\nfile:  %s\nbuilt: %s", mustJSON(rawNP.Spec), mustJSON(np.Spec))
	}
	d, rawD := only[*appsv1.Deployment](t, built), only[*appsv1.Deployment](t, raw)
	if !jsonEqual(d.Spec.Selector, rawD.Spec.Selector) {
		t.Errorf("kustomize changed the Deployment selector: %s -> %s", mustJSON(rawD.Spec.Selector), mustJSON(d.Spec.Selector))
	}
	if d.Spec.Template.Labels[appLabel] != appName {
		t.Errorf("built Deployment: pod template without %s", appLabel)
	}
}
