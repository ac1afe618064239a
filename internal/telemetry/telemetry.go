// Package telemetry sets up OpenTelemetry tracing of the gRPC server when an OTLP endpoint is
// configured: spans come from otelgrpc's stats handler (never message contents, so never a
// secret), health checks are not traced, and spans go to the collector over OTLP/gRPC.
package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/stats"
)

// Tracing is a configured tracer: the stats handler to give the gRPC server, and Shutdown to
// flush the spans still buffered.
type Tracing struct {
	Handler  stats.Handler
	Shutdown func(context.Context) error
}

// Options say where spans go.
type Options struct {
	// Endpoint is the collector's OTLP/gRPC address, e.g. otel-collector:4317.
	Endpoint string
	// Insecure sends spans without TLS (a collector inside the cluster, usually).
	Insecure bool
	// Version is resolverd's version, recorded on every span.
	Version string
}

// Setup starts tracing to o.Endpoint.
func Setup(ctx context.Context, o Options) (*Tracing, error) {
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(o.Endpoint)}
	if o.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("create the OTLP exporter for %s: %w", o.Endpoint, err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "resolverd"), attribute.String("service.version", o.Version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{Handler: ServerHandler(tp), Shutdown: tp.Shutdown}, nil
}

// ServerHandler is the gRPC stats handler that traces every RPC but health checks into tp,
// continuing the caller's trace (W3C trace context).
func ServerHandler(tp trace.TracerProvider) stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	)
}
