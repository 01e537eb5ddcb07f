using System.Diagnostics.Metrics;
using Confluent.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Realtime.Hosting.Telemetry;

/// <summary>The lag of one consumer group on one partition.</summary>
/// <param name="Group">The consumer group.</param>
/// <param name="Topic">The topic.</param>
/// <param name="Partition">The partition.</param>
/// <param name="Committed">The group's committed offset (the next record it will read); the log start when it has none.</param>
/// <param name="High">The partition's high watermark (the offset the next record will get).</param>
/// <param name="AgeSeconds">How old the oldest unconsumed record is (0 when there is none; null when it could not be read).</param>
public sealed record PartitionLag(string Group, string Topic, int Partition, long Committed, long High, double? AgeSeconds)
{
    public long Events => Math.Max(0, High - Committed);
}

/// <summary>
/// Measures consumer lag from what every Kafka-protocol broker serves: the group's committed
/// offsets (OffsetFetch) against the partitions' high watermarks (ListOffsets), and the age of the
/// oldest unconsumed record by reading it. No admin API beyond metadata is needed, so it works on
/// the embedded broker as on a real cluster.
/// </summary>
/// <remarks>Not thread-safe: one measurement at a time.</remarks>
public sealed class ConsumerLagProbe : IDisposable
{
    private readonly IAdminClient _admin;
    private readonly IConsumer<Ignore, Ignore> _reader;
    private readonly string _group;

    public ConsumerLagProbe(KafkaOptions options, string group, string clientId)
    {
        _group = group;
        _admin = new AdminClientBuilder(KafkaClientSettings.Admin(options, clientId)).Build();
        _reader = new ConsumerBuilder<Ignore, Ignore>(KafkaClientSettings.PositionReader(options, group, clientId)).Build();
    }

    /// <summary>The group's lag on every partition of <paramref name="topic"/>; empty when the topic does not exist.</summary>
    /// <exception cref="KafkaException">The broker did not answer, or not for every partition.</exception>
    public IReadOnlyList<PartitionLag> Measure(string topic, TimeSpan timeout)
    {
        var metadata = _admin.GetMetadata(topic, timeout).Topics.SingleOrDefault(t => t.Topic == topic);
        if (metadata is null || metadata.Error.Code == ErrorCode.UnknownTopicOrPart)
        {
            return [];
        }

        if (metadata.Error.IsError)
        {
            // A transient metadata error says nothing about the lag: keep the last measurement.
            throw new KafkaException(metadata.Error);
        }

        var partitions = metadata.Partitions.Select(p => new TopicPartition(topic, p.PartitionId)).OrderBy(p => p.Partition.Value).ToList();
        var committed = _reader.Committed(partitions, timeout).ToDictionary(c => c.Partition.Value, c => c.Offset);
        var result = new List<PartitionLag>(partitions.Count);
        foreach (var partition in partitions)
        {
            var marks = _reader.QueryWatermarkOffsets(partition, timeout);
            var position = committed.TryGetValue(partition.Partition.Value, out var offset) && offset.Value >= 0 ? offset.Value : marks.Low.Value;
            position = Math.Max(position, marks.Low.Value);
            var age = position >= marks.High.Value ? 0 : OldestAge(partition, position, timeout);
            result.Add(new PartitionLag(_group, topic, partition.Partition.Value, position, marks.High.Value, age));
        }

        return result;
    }

    public void Dispose()
    {
        _reader.Close();
        _reader.Dispose();
        _admin.Dispose();
    }

    private double? OldestAge(TopicPartition partition, long offset, TimeSpan timeout)
    {
        _reader.Assign(new TopicPartitionOffset(partition, offset));
        try
        {
            var deadline = DateTime.UtcNow + timeout;
            while (DateTime.UtcNow < deadline)
            {
                var record = _reader.Consume(TimeSpan.FromMilliseconds(200));
                if (record is null)
                {
                    continue;
                }

                if (record.IsPartitionEOF)
                {
                    return 0;
                }

                return Math.Max(0, (DateTime.UtcNow - record.Message.Timestamp.UtcDateTime).TotalSeconds);
            }

            return null;
        }
        catch (ConsumeException)
        {
            return null;
        }
        finally
        {
            _reader.Unassign();
        }
    }
}

/// <summary>
/// <c>realtime_consumer_lag_events</c> and <c>realtime_consumer_lag_seconds</c> gauges
/// (by group, topic and partition) for one consumer group of this process, measured every
/// <see cref="TelemetryOptions.LagInterval"/> on a thread of its own.
/// </summary>
public sealed partial class ConsumerLagReporter : BackgroundService
{
    private readonly KafkaOptions _kafka;
    private readonly TelemetryOptions _options;
    private readonly ILogger<ConsumerLagReporter> _logger;
    private readonly Meter _meter;
    private readonly string _group;
    private readonly string _topic;
    private IReadOnlyList<PartitionLag> _latest = [];
    private long _lastSuccessTicks;

    public ConsumerLagReporter(string group, string topic, IOptions<KafkaOptions> kafka, IOptions<TelemetryOptions> options, IMeterFactory meters, ILogger<ConsumerLagReporter> logger)
    {
        _group = group;
        _topic = topic;
        _kafka = kafka.Value;
        _options = options.Value;
        _logger = logger;
        _meter = meters.Create(PipelineTelemetry.LagMeter);
        _meter.CreateObservableGauge("realtime.consumer.lag.events", () => Observe(l => l.Events), "{event}", "Records of the partition the group has not committed yet.");
        _meter.CreateObservableGauge("realtime.consumer.lag", () => Observe(l => l.AgeSeconds ?? 0), "s", "Age of the oldest record of the partition the group has not committed yet.");
    }

    /// <summary>The last measurement (empty before the first).</summary>
    public IReadOnlyList<PartitionLag> Latest => Volatile.Read(ref _latest);

    /// <summary>
    /// Whether Kafka answered a measurement lately (within three intervals, or ten seconds at
    /// least): readiness uses it as "Kafka reachable", since it asks the brokers every interval.
    /// </summary>
    public bool KafkaReachable =>
        DateTime.UtcNow - new DateTime(Interlocked.Read(ref _lastSuccessTicks), DateTimeKind.Utc) < TimeSpan.FromTicks(Math.Max(_options.LagInterval.Ticks * 3, TimeSpan.FromSeconds(10).Ticks));

    public override void Dispose()
    {
        _meter.Dispose();
        base.Dispose();
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken stoppingToken)
    {
        using var probe = new ConsumerLagProbe(_kafka, _group, $"{_group}.lag");
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                Volatile.Write(ref _latest, probe.Measure(_topic, TimeSpan.FromSeconds(5)));
                Interlocked.Exchange(ref _lastSuccessTicks, DateTime.UtcNow.Ticks);
            }
            catch (KafkaException e)
            {
                LogMeasureFailed(_group, e.Error.Reason);
            }

            stoppingToken.WaitHandle.WaitOne(_options.LagInterval);
        }
    }

    private IEnumerable<Measurement<T>> Observe<T>(Func<PartitionLag, T> value)
        where T : struct
    {
        foreach (var lag in Latest)
        {
            yield return new Measurement<T>(value(lag), new KeyValuePair<string, object?>("group", lag.Group), new KeyValuePair<string, object?>("topic", lag.Topic), new KeyValuePair<string, object?>("partition", lag.Partition));
        }
    }

    [LoggerMessage(EventId = 9100, Level = LogLevel.Warning, Message = "Could not measure the lag of {Group}: {Reason}")]
    private partial void LogMeasureFailed(string group, string reason);
}
