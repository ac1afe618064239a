package validate

// Strict decoding: every YAML document of the base decodes into the Kubernetes type of its kind.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kinds maps each apiVersion/kind this base may hold to its Go type. Anything else fails, a Secret
// or ConfigMap in particular: values of Secrets never live in this repository.
var kinds = map[string]func() any{
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// decodeStrict decodes JSON into v, refusing unknown fields (json.Decoder.DisallowUnknownFields),
// and then again with the API server's own strict rules (sigs.k8s.io/json): field names are
// case-sensitive there, where encoding/json would take `Replicas` for `replicas`, and duplicate
// fields are errors.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	strictErrs, err := kjson.UnmarshalStrict(data, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// object is one decoded manifest document.
type object struct {
	file  string // base name, e.g. deployment.yaml
	index int    // document index within the file
	kind  string // apiVersion/kind
	obj   any    // *appsv1.Deployment, ...
}

func (o object) String() string { return fmt.Sprintf("%s#%d (%s)", o.file, o.index, o.kind) }

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// decodeDocuments splits a YAML stream on `---` lines and decodes every non-empty document
// strictly into the API type of its apiVersion/kind.
func decodeDocuments(name string, data []byte) ([]object, error) {
	var out []object
	for i, doc := range docSeparator.Split(string(data), -1) {
		// YAMLToJSONStrict: a duplicate key is an error, not "the last one wins".
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s#%d: not valid YAML: %w", name, i, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			continue // only comments
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("%s#%d: %w", name, i, err)
		}
		kind := tm.APIVersion + "/" + tm.Kind
		newObj, ok := kinds[kind]
		if !ok {
			if tm.Kind == "Secret" {
				return nil, fmt.Errorf("%s#%d: a Secret: Secrets are created out of band (deploy/README.md), never committed", name, i)
			}
			return nil, fmt.Errorf("%s#%d: unexpected kind %q (apiVersion %q): add it to the kinds table if it belongs here", name, i, tm.Kind, tm.APIVersion)
		}
		obj := newObj()
		if err := decodeStrict(js, obj); err != nil {
			return nil, fmt.Errorf("%s#%d (%s): %w", name, i, kind, err)
		}
		out = append(out, object{file: name, index: i, kind: kind, obj: obj})
	}
	return out, nil
}

// manifestFiles lists the manifest files of the base (every *.yaml/*.yml but kustomization.yaml).
func manifestFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || n == "kustomization.yaml" || n == "kustomization.yml" || n == "Kustomization" {
			continue
		}
		if ext := filepath.Ext(n); ext == ".yaml" || ext == ".yml" {
			files = append(files, n)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", baseDir)
	}
	return files
}

// loadBase decodes every manifest of the base; any decoding error fails the test.
func loadBase(t *testing.T) []object {
	t.Helper()
	var all []object
	for _, f := range manifestFiles(t) {
		data, err := os.ReadFile(filepath.Join(baseDir, f))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeDocuments(f, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s holds no object", f)
		}
		all = append(all, objs...)
	}
	return all
}

// only returns the single object of type T, failing unless there is exactly one.
func only[T any](t *testing.T, objs []object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T in the base, found %d", zero, len(found))
	}
	return found[0]
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := loadBase(t)
	seen := map[string]string{}
	for _, o := range objs {
		meta := objectMeta(o.obj)
		if meta.Name == "" {
			t.Errorf("%s: no metadata.name", o)
		}
		if meta.Namespace != "" {
			t.Errorf("%s: metadata.namespace %q: the base is namespace-free (set it in an overlay)", o, meta.Namespace)
		}
		if meta.Labels[appLabel] != appName {
			t.Errorf("%s: label %s=%s missing", o, appLabel, appName)
		}
		key := o.kind + "/" + meta.Name
		if prev, dup := seen[key]; dup {
			t.Errorf("%s: %s already defined in %s", o, key, prev)
		}
		seen[key] = o.String()
	}
	t.Logf("%d objects decoded strictly: %s", len(objs), strings.Join(sortedKeys(seen), ", "))
}

// TestStrictDecoderRejects makes sure the decoder above is as strict as it claims: a validator
// that accepts everything would make every other test meaningless.
func TestStrictDecoderRejects(t *testing.T) {
	cases := map[string]string{
		"unknown field":           "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 3}\n",
		"field in the wrong case": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {Replicas: 3}\n",
		"duplicate key":           "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIP: None\n  clusterIP: 10.0.0.1\n",
		"wrong type":              "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: three}\n",
		"unknown nested field":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n  - {port: 1, targetPort: 1, protcol: TCP}\n",
		"unknown kind":            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
		"a Secret":                "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {url: postgres://u:p@h/db}\n",
		"wrong apiVersion":        "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: x}\n",
	}
	for name, doc := range cases {
		if _, err := decodeDocuments("case.yaml", []byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := "# comment only\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n---\n"
	if objs, err := decodeDocuments("ok.yaml", []byte(ok)); err != nil || len(objs) != 1 {
		t.Errorf("valid stream: %d objects, %v", len(objs), err)
	}
}
