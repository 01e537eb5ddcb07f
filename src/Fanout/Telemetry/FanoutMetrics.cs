using System.Diagnostics.Metrics;
using Realtime.Hosting.Telemetry;

namespace Realtime.Fanout.Telemetry;

/// <summary>The fanout's instruments (meter <c>Realtime.Fanout</c>).</summary>
internal sealed class FanoutMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly Counter<long> _consumed;
    private readonly Counter<long> _routed;
    private readonly Histogram<long> _targets;
    private readonly Counter<long> _lookups;
    private readonly Counter<long> _cacheHits;
    private readonly Histogram<double> _produce;
    private readonly Histogram<double> _sequencing;
    private readonly Histogram<long> _batch;
    private readonly Counter<long> _rebalances;

    public FanoutMetrics(IMeterFactory meters)
    {
        _meter = meters.Create(PipelineTelemetry.FanoutMeter);
        _consumed = _meter.CreateCounter<long>("realtime.fanout.events.consumed", "{event}", "Ingress records read.");
        _routed = _meter.CreateCounter<long>("realtime.fanout.events.routed", "{event}", "Records written to node topics (one per target node).");
        _targets = _meter.CreateHistogram("realtime.fanout.targets_per_event", "{node}", "Target nodes per ingress record: the fan-out ratio.", tags: null, new InstrumentAdvice<long> { HistogramBucketBoundaries = [0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500] });
        _lookups = _meter.CreateCounter<long>("realtime.fanout.route.lookups", "{lookup}", "Route-set reads (one per channel per batch).");
        _cacheHits = _meter.CreateCounter<long>("realtime.fanout.route.cache_hits", "{lookup}", "Node liveness answers served from the cache.");
        _produce = PipelineTelemetry.LatencyHistogram(_meter, "realtime.fanout.produce.duration", "Time from handing a record to the producer until its node topic acknowledged it.");
        _sequencing = PipelineTelemetry.LatencyHistogram(_meter, "realtime.fanout.sequencing.duration", "Time a batch waited for Redis to sequence and route it (one round trip, retries included).");
        _batch = _meter.CreateHistogram("realtime.fanout.batch_size", "{event}", "Ingress records per batch.", tags: null, new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] });
        _rebalances = _meter.CreateCounter<long>("realtime.fanout.rebalances", "{rebalance}", "Partition assignments and revocations of this instance.");
    }

    public void Batch(int records)
    {
        _consumed.Add(records);
        _batch.Record(records);
    }

    public void Targets(int nodes)
    {
        _targets.Record(nodes);
        _routed.Add(nodes);
    }

    public void Lookups(int channels, int cacheHits)
    {
        _lookups.Add(channels);
        _cacheHits.Add(cacheHits);
    }

    public void Produced(TimeSpan elapsed) => _produce.Record(elapsed.TotalSeconds);

    public void Sequenced(TimeSpan elapsed) => _sequencing.Record(elapsed.TotalSeconds);

    public void Rebalanced() => _rebalances.Add(1);

    public void Dispose() => _meter.Dispose();
}
