using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace Realtime.EmbeddedKafka;

/// <summary>
/// <c>/metrics</c> of the embedded broker host, so a local Prometheus scrapes every process of the
/// stack: the host is up, how many brokers and topics it serves, and how long it has run.
/// </summary>
internal sealed class EmbeddedKafkaMetrics : IDisposable
{
    private readonly Meter _meter = new("Realtime.EmbeddedKafka");
    private readonly MeterProvider _provider;

    private EmbeddedKafkaMetrics(IPEndPoint endpoint, int brokers, int topics)
    {
        var started = Stopwatch.GetTimestamp();
        _meter.CreateObservableGauge("realtime.embedded_kafka.brokers", () => brokers, "{broker}", "Brokers of the in-memory cluster.");
        _meter.CreateObservableGauge("realtime.embedded_kafka.topics_created", () => topics, "{topic}", "Topics created at start (others are created on first use).");
        _meter.CreateObservableGauge("realtime.embedded_kafka.uptime", () => Stopwatch.GetElapsedTime(started).TotalSeconds, "s", "Time since the cluster started.");
        _provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(_meter.Name)
            .AddPrometheusHttpListener(o =>
            {
                o.Host = endpoint.Address.ToString();
                o.Port = endpoint.Port;
                o.ScrapeResponseCacheDurationMilliseconds = 0;
            })
            .Build();
    }

    public static EmbeddedKafkaMetrics Start(IPEndPoint endpoint, int brokers, int topics) => new(endpoint, brokers, topics);

    public void Dispose()
    {
        _provider.Dispose();
        _meter.Dispose();
    }
}
