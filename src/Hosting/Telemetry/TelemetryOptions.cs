using System.ComponentModel.DataAnnotations;

namespace Realtime.Hosting.Telemetry;

/// <summary>Metrics and traces of a process. Section <c>Telemetry</c>.</summary>
public sealed class TelemetryOptions
{
    public const string Section = "Telemetry";

    /// <summary>Serve Prometheus metrics on <c>/metrics</c> of the process's HTTP port.</summary>
    public bool PrometheusEnabled { get; set; } = true;

    /// <summary>An OTLP endpoint (gRPC, e.g. <c>http://otel-collector:4317</c>) to send traces to; none when empty.</summary>
    public Uri? OtlpEndpoint { get; set; }

    /// <summary>Fraction of traces started here that are recorded (parent-based: a sampled caller's trace is always followed).</summary>
    [Range(0.0, 1.0)]
    public double TraceSamplingRatio { get; set; } = 0.1;

    /// <summary>How often consumer lag is measured (committed offsets against high watermarks).</summary>
    public TimeSpan LagInterval { get; set; } = TimeSpan.FromSeconds(5);
}
