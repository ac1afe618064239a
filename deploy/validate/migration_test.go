package validate

// The migration Job, and the README's upgrade step that applies it first.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestMigrationJob(t *testing.T) {
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	job := only[*batchv1.Job](t, objs)
	pod := job.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("Job: %d containers, want 1", len(pod.Containers))
	}
	c := &pod.Containers[0]
	if !slices.Equal(c.Args, []string{"migrate", "up"}) || (len(c.Command) > 0 && !slices.Equal(c.Command, []string{"/resolverd"})) {
		t.Errorf("Job runs command %q args %q, want `resolverd migrate up`", c.Command, c.Args)
	}
	if c.Image != serverContainer(t, d).Image {
		t.Errorf("Job image %q differs from the Deployment's %q: the migration must be the new version's", c.Image, serverContainer(t, d).Image)
	}
	if deref(job.Spec.BackoffLimit) != 2 {
		t.Errorf("backoffLimit %d, want 2", deref(job.Spec.BackoffLimit))
	}
	if job.Spec.TTLSecondsAfterFinished == nil || *job.Spec.TTLSecondsAfterFinished <= 0 {
		t.Errorf("ttlSecondsAfterFinished not set")
	}
	if p := deref(job.Spec.Parallelism); job.Spec.Parallelism != nil && p != 1 {
		t.Errorf("parallelism %d: one migration at a time", p)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("restartPolicy %q", pod.RestartPolicy)
	}
	requireSecretRef(t, c, "RESOLVER_DATABASE_URL", "resolverd-database", "url")
	checkEnv(t, "Job", c, flagsOf(t, "migrate.go"))
	checkPodSecurity(t, "Job", &pod)
	checkContainerSecurity(t, "Job", c)
	checkServiceAccount(t, objs, "Job", &pod)
	if subset(d.Spec.Selector.MatchLabels, job.Spec.Template.Labels) {
		t.Errorf("the Deployment's selector also matches the Job's pods")
	}
}

// migrationSelector is the label selector deploy/README.md's upgrade steps apply first, alone.
const migrationSelector = "app.kubernetes.io/component in (migration,identity)"

// TestMigrationStepAppliesWhatTheJobNeeds: the README's first apply (a label selector on the
// kustomize output) must bring the migration Job and everything it needs to run on a first
// install — the ServiceAccount it runs as — and nothing that would start serving pods.
func TestMigrationStepAppliesWhatTheJobNeeds(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(baseDir, "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "-l '"+migrationSelector+"'") {
		t.Fatalf("deploy/README.md no longer applies -l '%s': keep this test's selector in step", migrationSelector)
	}
	sel, err := labels.Parse(migrationSelector)
	if err != nil {
		t.Fatal(err)
	}
	objs := loadBase(t)
	job := only[*batchv1.Job](t, objs)
	var picked []object
	for _, o := range objs {
		if sel.Matches(labels.Set(objectMeta(o.obj).Labels)) {
			picked = append(picked, o)
		}
	}
	var haveJob, haveSA bool
	for _, o := range picked {
		switch v := o.obj.(type) {
		case *batchv1.Job:
			haveJob = v.Name == job.Name
		case *corev1.ServiceAccount:
			haveSA = haveSA || v.Name == job.Spec.Template.Spec.ServiceAccountName
		default:
			t.Errorf("the migration step would also apply %s", o)
		}
	}
	if !haveJob || !haveSA {
		t.Errorf("the migration step applies %v; want the Job and its ServiceAccount %q", picked, job.Spec.Template.Spec.ServiceAccountName)
	}
}
