// Package hops follows one event across the hops of the pipeline: from the command that
// records it to its commit, to the broker, to each consumer group's fetch, to its effect. It
// carries the W3C Trace Context (www.w3.org/TR/trace-context) of the command along that way,
// in the event's metadata and in its record's headers, so that the command's trace holds the
// append, the relay's publish and every consumer's handling; and it measures each hop's latency
// in the histogram annals_hop_seconds.
//
// The library's packages take a Tracing: its zero value uses OpenTelemetry's global tracer
// provider and propagator, which do nothing, at next to no cost, until a program installs an
// SDK (internal/telemetry does, in the services, when tracing is configured). So a library user
// who installs nothing gets no-op spans and no trace headers.
//
// It uses the OpenTelemetry API only: it must never import the SDK or an exporter, which are a
// program's choice, nor anything of this repository but pkg/kafkawire.
package hops
