package validate

// The PodDisruptionBudget and the HorizontalPodAutoscaler of the Deployment.

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPodDisruptionBudgetAndAutoscaler(t *testing.T) {
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	pdb := only[*policyv1.PodDisruptionBudget](t, objs)
	hpa := only[*autoscalingv2.HorizontalPodAutoscaler](t, objs)

	if pdb.Spec.Selector == nil || !jsonEqual(pdb.Spec.Selector, d.Spec.Selector) {
		t.Errorf("PDB selector %s, want the Deployment's %s", mustJSON(pdb.Spec.Selector), mustJSON(d.Spec.Selector))
	}
	if !intOrStringIs(pdb.Spec.MinAvailable, 2) || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB minAvailable %v maxUnavailable %v, want minAvailable 2", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
	}
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HPA targets %s %s %s, want apps/v1 Deployment %s", ref.APIVersion, ref.Kind, ref.Name, d.Name)
	}
	if deref(hpa.Spec.MinReplicas) != 3 || hpa.Spec.MaxReplicas != 10 {
		t.Errorf("HPA %d..%d, want 3..10", deref(hpa.Spec.MinReplicas), hpa.Spec.MaxReplicas)
	}
	// The PDB must leave room for at least one eviction at the HPA's floor.
	if min := pdb.Spec.MinAvailable; min != nil && min.Type == intstr.Int && min.IntVal >= deref(hpa.Spec.MinReplicas) {
		t.Errorf("PDB minAvailable %d >= HPA minReplicas %d: no node could ever be drained", min.IntVal, deref(hpa.Spec.MinReplicas))
	}
	if deref(d.Spec.Replicas) < deref(hpa.Spec.MinReplicas) {
		t.Errorf("Deployment replicas %d below the HPA floor %d", deref(d.Spec.Replicas), deref(hpa.Spec.MinReplicas))
	}
	var cpu bool
	for _, m := range hpa.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && deref(m.Resource.Target.AverageUtilization) == 70 {
			cpu = true
		}
	}
	if !cpu {
		t.Errorf("HPA: no CPU utilization target of 70%%")
	}
	if _, ok := serverContainer(t, d).Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Errorf("a CPU utilization target needs a CPU request")
	}
}
