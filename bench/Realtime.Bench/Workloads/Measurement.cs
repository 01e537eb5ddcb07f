using System.Diagnostics;
using System.Text.Json.Nodes;
using HdrHistogram;

namespace Realtime.Bench.Workloads;

/// <summary>
/// What every workload records the same way: per-process CPU and memory of the system under test
/// (from /proc, before and after), the generator's own CPU (a run whose generator needs more than
/// 70% of its core is invalid: it measured itself), delivery latency (HdrHistogram, recorded in
/// tenths of a µs) and loss.
/// </summary>
internal sealed class Measurement
{
    private readonly Func<IReadOnlyList<(string Name, int Pid)>> _processes;
    private List<ProcessSample> _before = [];
    private TimeSpan _generatorBefore;
    private long _startedAt;
    private (List<ProcessSample> Processes, TimeSpan GeneratorCpu, double Seconds)? _stopped;

    public Measurement(Func<IReadOnlyList<(string Name, int Pid)>> processes) => _processes = processes;

    public LongConcurrentHistogram Latency { get; } = new(1, TimeSpan.FromSeconds(120).Ticks, 3);

    /// <summary>Records one delivery's latency in µs.</summary>
    public void RecordMicros(long micros) => Latency.RecordValue(Math.Clamp(micros * 10, 1, Latency.HighestTrackableValue));

    public void Start()
    {
        _before = Snapshot();
        _generatorBefore = Process.GetCurrentProcess().TotalProcessorTime;
        _startedAt = Stopwatch.GetTimestamp();
    }

    /// <summary>
    /// Ends the measured window now, for a workload that reads its deliveries back afterwards:
    /// the CPU that reading costs the broker and the generator is not the run's.
    /// </summary>
    /// <returns>The processes as sampled at the end.</returns>
    public List<ProcessSample> Stop()
    {
        var end = Snapshot();
        _stopped = (end, Process.GetCurrentProcess().TotalProcessorTime, Stopwatch.GetElapsedTime(_startedAt).TotalSeconds);
        return end;
    }

    public List<ProcessSample> Snapshot() =>
        [.. _processes().Select(p => ProcessSample.Read(p.Name, p.Pid)).OfType<ProcessSample>()];

    /// <summary>Stops the clock and builds the result of a run whose deliveries a ledger counted (lost and duplicated ones too).</summary>
    public JsonObject Finish(string workload, string target, JsonObject parameters, long expected, DeliveryLedger ledger)
    {
        var report = Finish(workload, target, parameters, expected, ledger.Delivered);
        report["duplicates"] = ledger.Duplicates;
        return report;
    }

    /// <summary>Stops the clock and builds the result: <paramref name="parameters"/> plus the common figures.</summary>
    public JsonObject Finish(string workload, string target, JsonObject parameters, long expected, long delivered, bool withLatency = true)
    {
        var (after, generatorEnd, seconds) = _stopped ?? (Snapshot(), Process.GetCurrentProcess().TotalProcessorTime, Stopwatch.GetElapsedTime(_startedAt).TotalSeconds);
        var generatorCpu = (generatorEnd - _generatorBefore).TotalSeconds;
        var processes = new JsonArray();
        double stackCpu = 0, serversCpu = 0;
        foreach (var end in after)
        {
            var start = _before.FirstOrDefault(b => b.Pid == end.Pid);
            var cpu = end.CpuSeconds - (start?.CpuSeconds ?? 0);
            stackCpu += cpu;
            if (IsServer(end.Name))
            {
                serversCpu += cpu;
            }

            processes.Add(new JsonObject
            {
                ["name"] = end.Name,
                ["cpuSeconds"] = Math.Round(cpu, 3),
                ["peakRssMiB"] = Math.Round(end.PeakRssKiB / 1024.0, 1),
                ["rssMiB"] = Math.Round(end.RssKiB / 1024.0, 1),
            });
        }

        var generatorShare = seconds > 0 ? generatorCpu / seconds : 0;
        var report = new JsonObject
        {
            ["workload"] = workload,
            ["target"] = target,
            ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
            ["parameters"] = parameters,
            ["seconds"] = Math.Round(seconds, 2),
            ["expected"] = expected,
            ["delivered"] = delivered,
            ["lost"] = Math.Max(0, expected - delivered),
            ["processes"] = processes,
            ["cpuSeconds"] = Math.Round(stackCpu, 2),
            ["cpuSecondsPerMillionDeliveries"] = delivered > 0 ? Math.Round(stackCpu / delivered * 1_000_000, 2) : null,
            // Our gateways alone (or a peer's server instances alone): the backbone's cost is the difference.
            ["gatewayOnlyCpuSecondsPerMillionDeliveries"] = delivered > 0 ? Math.Round(serversCpu / delivered * 1_000_000, 2) : null,
            ["generatorCpuShare"] = Math.Round(generatorShare, 3),
            ["valid"] = generatorShare <= 0.7,
        };
        if (withLatency && Latency.TotalCount > 0)
        {
            double Ms(double percentile) => Math.Round(Latency.GetValueAtPercentile(percentile) / 10_000.0, 3);
            report["latencyMs"] = new JsonObject { ["p50"] = Ms(50), ["p90"] = Ms(90), ["p99"] = Ms(99), ["p99.9"] = Ms(99.9), ["max"] = Math.Round(Latency.GetMaxValue() / 10_000.0, 3) };
            report["latencyPercentilesMs"] = LatencyCurve();
        }

        return report;
    }

    /// <summary>A server process (a gateway or a peer's server instance), as opposed to the backbone (Kafka, Redis, fanout).</summary>
    public static bool IsServer(string name) =>
        name.StartsWith("gateway", StringComparison.Ordinal) || name.StartsWith("server", StringComparison.Ordinal);

    /// <summary>The latency distribution at fixed percentiles, for the plots.</summary>
    private JsonArray LatencyCurve()
    {
        var curve = new JsonArray();
        foreach (var p in new[] { 0.0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100 })
        {
            curve.Add(new JsonArray(p, Math.Round((p == 100 ? Latency.GetMaxValue() : Latency.GetValueAtPercentile(p)) / 10_000.0, 3)));
        }

        return curve;
    }
}

/// <summary>Counts each subscriber's deliveries by sequence number: lost and duplicated events, not just totals.</summary>
internal sealed class DeliveryLedger
{
    private readonly bool[][] _seen;
    private readonly long[] _count;
    private long _duplicates;

    public DeliveryLedger(int subscribers, int events)
    {
        _seen = new bool[subscribers][];
        for (var i = 0; i < subscribers; i++)
        {
            _seen[i] = new bool[events];
        }

        _count = new long[subscribers];
    }

    public long Delivered => _count.Sum();

    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <summary>Called on subscriber <paramref name="index"/>'s own read loop (one caller per index at a time).</summary>
    public void Record(int index, long n)
    {
        var seen = _seen[index];
        if ((ulong)n >= (ulong)seen.Length)
        {
            return;
        }

        if (seen[n])
        {
            Interlocked.Increment(ref _duplicates);
            return;
        }

        seen[n] = true;
        Interlocked.Increment(ref _count[index]);
    }
}
