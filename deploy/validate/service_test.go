package validate

// The headless Service in front of the Deployment's pods.

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestHeadlessService(t *testing.T) {
	objs := loadBase(t)
	d := only[*appsv1.Deployment](t, objs)
	svc := only[*corev1.Service](t, objs)
	c := serverContainer(t, d)
	if svc.Name != appName {
		t.Errorf("Service %q: clients dial dns:///resolverd.<ns>.svc.cluster.local, so it must be named %s", svc.Name, appName)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service clusterIP %q, want None (headless, for client-side load balancing)", svc.Spec.ClusterIP)
	}
	if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service type %s", svc.Spec.Type)
	}
	if svc.Spec.PublishNotReadyAddresses {
		t.Errorf("publishNotReadyAddresses would hand clients pods that are not Ready")
	}
	if len(svc.Spec.Selector) == 0 || !subset(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not select the Deployment's pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	job := only[*batchv1.Job](t, objs)
	if subset(svc.Spec.Selector, job.Spec.Template.Labels) {
		t.Errorf("Service selector %v also selects the migration Job's pods", svc.Spec.Selector)
	}
	ports := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p
		// The health-only listener is plaintext and for the kubelet: clients have no use for it.
		if p.Port == 50052 || p.TargetPort.StrVal == "health" || p.TargetPort.IntVal == 50052 {
			t.Errorf("Service port %s publishes the plaintext health-only listener", p.Name)
		}
	}
	for name, want := range map[string]int32{"grpc": grpcPort, "metrics": metricsPt} {
		p, ok := ports[name]
		if !ok || p.Port != want {
			t.Errorf("Service port %s: %+v, want port %d", name, p, want)
			continue
		}
		target := p.TargetPort
		switch {
		case target.Type == intstr.String && containerPort(t, c, target.StrVal) != want:
			t.Errorf("Service port %s targets container port %q, which is not %d", name, target.StrVal, want)
		case target.Type == intstr.Int && target.IntVal != 0 && target.IntVal != want:
			t.Errorf("Service port %s targets %d", name, target.IntVal)
		}
	}
}
