using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Realtime.Hosting.Telemetry;

/// <summary>
/// Metrics and traces for every Realtime Pipeline process: OpenTelemetry with a Prometheus
/// endpoint and, when configured, OTLP traces. Each component has its own meter and activity
/// source, named here.
/// </summary>
public static class PipelineTelemetry
{
    public const string GatewayMeter = "Realtime.Gateway";
    public const string FanoutMeter = "Realtime.Fanout";
    public const string LagMeter = "Realtime.Lag";
    public const string LatencyMeter = "Realtime.Latency";

    /// <summary>
    /// The runtime's own meter (.NET 9+): GC collections, pause time and heap, thread-pool queue,
    /// lock contention. Its instruments are observed only when scraped.
    /// </summary>
    public const string RuntimeMeter = "System.Runtime";

    /// <summary>Tag sets kept per runtime instrument; beyond it, points go to the overflow series.</summary>
    private const int RuntimeCardinalityLimit = 100;

    /// <summary>Spans of the delivery path: publish, route (fanout), deliver (gateway).</summary>
    public static readonly ActivitySource Tracing = new("Realtime.Pipeline");

    /// <summary>Latency buckets in seconds, from half a millisecond to half a minute.</summary>
    public static readonly IReadOnlyList<double> LatencyBuckets =
        [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    public static IServiceCollection AddPipelineTelemetry(this IServiceCollection services, IConfiguration configuration, string serviceName, params string[] meters)
    {
        services.AddOptions<TelemetryOptions>().Bind(configuration.GetSection(TelemetryOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        var options = configuration.GetSection(TelemetryOptions.Section).Get<TelemetryOptions>() ?? new TelemetryOptions();
        services.AddSingleton<DeliveryLatency>();
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter([.. meters, LagMeter, LatencyMeter, RuntimeMeter]);

                // The runtime's instruments carry a few tag sets each (a generation, a CPU mode, an
                // exception type); the default limit preallocates 2,000 points per stream (144 KB
                // each, about 2.7 MB per process for its 19 streams).
                metrics.AddView(instrument => instrument.Meter.Name == RuntimeMeter ? new MetricStreamConfiguration { CardinalityLimit = RuntimeCardinalityLimit } : null);
                if (options.PrometheusEnabled)
                {
                    // No response cache: a scrape always sees what happened before it.
                    metrics.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
                }
            })
            .WithTracing(tracing =>
            {
                tracing.AddSource(Tracing.Name)
                    .SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(options.TraceSamplingRatio)))
                    .AddAspNetCoreInstrumentation(o => o.Filter = context => !context.Request.Path.StartsWithSegments("/metrics"));
                if (options.OtlpEndpoint is { } endpoint)
                {
                    tracing.AddOtlpExporter(o => o.Endpoint = endpoint);
                }
            });
        return services;
    }

    /// <summary>Histograms of latency: seconds, with buckets fit for a real-time path.</summary>
    public static Histogram<double> LatencyHistogram(Meter meter, string name, string description) =>
        meter.CreateHistogram(name, "s", description, tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
}
