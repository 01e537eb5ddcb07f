using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Fanout.Delivery;
using Realtime.Fanout.Routing;
using Realtime.Fanout.Telemetry;
using Realtime.Hosting;
using Realtime.Hosting.Telemetry;
using StackExchange.Redis;

namespace Realtime.Fanout.Ingress;

/// <summary>
/// Steps 2-4 of the data flow: consumes the ingress topic as a member of the fanout consumer
/// group, looks up each batch's target nodes in the routing table and writes every event to
/// each target node's delivery topic, keyed by channel so per-channel order carries over.
/// </summary>
/// <remarks>
/// Delivery guarantee: at-least-once from the ingress topic to every node that had a route
/// when the event was looked up. An ingress offset is stored only when that record and every
/// record before it in its partition were acknowledged by all their node topics (acks=all,
/// idempotent producer); a failed write rewinds the partition to the first undelivered record.
/// A worker that dies loses nothing: the group re-reads from the last committed offset.
/// The consume loop runs on its own thread because <c>Consume</c> blocks.
/// </remarks>
internal sealed partial class FanoutWorker(
    IOptions<KafkaOptions> kafkaOptions,
    IOptions<FanoutOptions> fanoutOptions,
    PipelineNames names,
    ChannelSequencer sequencer,
    TopicProvisioner provisioner,
    FanoutStatus status,
    FanoutMetrics metrics,
    DeliveryLatency latency,
    TimeProvider time,
    ILogger<FanoutWorker> logger) : BackgroundService
{
    private static readonly TimeSpan PollTimeout = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan FlushTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RewindPause = TimeSpan.FromMilliseconds(250);
    private static readonly byte[] BatchHeaderValue = "1"u8.ToArray();

    // A node-topic record stays well under Kafka's default 1 MiB message size, even with one more
    // delivery of the largest payload appended.
    private const int MaxBatchRecordBytes = 256 * 1024;
    private const int MaxIdleBatches = 4_096;

    private readonly FanoutOptions _options = fanoutOptions.Value;
    private readonly IngressProgress _progress = new();
    private readonly NodeDeliveryEncoder _encoder = new(names.IngressTopic);
    // Keyed by the interned targets array (reference equality): one batch per set of nodes and ingress partition.
    private readonly Dictionary<(string[] Targets, int Partition), NodeBatch> _batches = [];
    private readonly List<NodeBatch> _openBatches = [];
    private readonly Dictionary<int, byte[]> _partitionKeys = [];
    private readonly Dictionary<string, string> _nodeTopics = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _capacity = new(0);
    private volatile IConsumer<byte[], byte[]>? _consumer;
    // Three batches in turn (see ConsumeLoop); fields, because a rebalance inside Consume drops
    // the records of partitions this instance lost from all of them (Forget).
    private ConsumedBatch _held = new(fanoutOptions.Value.MaxBatchSize);
    private ConsumedBatch _reading = new(fanoutOptions.Value.MaxBatchSize);
    private ConsumedBatch _next = new(fanoutOptions.Value.MaxBatchSize);
    private int _rewindRequested;
    // Records the next batch may take (BatchLimit): the configured maximum until a batch fans out widely.
    private int _batchLimit = fanoutOptions.Value.MaxBatchSize;
    private volatile bool _pauseRequested;
    private volatile bool _paused;
    private TaskCompletionSource _pauseApplied = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>True while routing is paused by an operator.</summary>
    public bool IsPaused => _paused;

    /// <summary>
    /// Stops routing (an operator's pause, e.g. while Redis is maintained) or starts it again:
    /// the instance keeps its partitions and its group membership, and consumes nothing until
    /// resumed. Lag grows meanwhile, which is what the lag alerts are for. Completes once the
    /// consume loop has applied it (bounded by <paramref name="timeout"/>).
    /// </summary>
    public async Task<bool> SetPausedAsync(bool paused, TimeSpan timeout)
    {
        var applied = Volatile.Read(ref _pauseApplied);
        _pauseRequested = paused;
        if (_paused == paused)
        {
            return true;
        }

        await applied.Task.WaitAsync(timeout).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        return _paused == paused;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(
            () => Run(stoppingToken),
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

    private void Run(CancellationToken stoppingToken)
    {
        var instance = _options.ResolveInstanceId();
        try
        {
            provisioner.EnsureIngressTopicAsync(stoppingToken).GetAwaiter().GetResult();
            var producerConfig = KafkaClientSettings.DurableProducer(kafkaOptions.Value, $"fanout-{instance}");
            // A batch multiplies into one record per target node; let librdkafka hold them all.
            producerConfig.QueueBufferingMaxMessages = 2_000_000;
            using var producer = new ProducerBuilder<byte[], byte[]>(producerConfig).WithLogging(logger).Build();
            using var consumer = BuildConsumer(instance, producer);
            _consumer = consumer;
            consumer.Subscribe(names.IngressTopic);
            LogStarted(instance, names.IngressTopic, names.FanoutGroupId);

            ConsumeLoop(consumer, producer, stoppingToken);

            LogStopping(instance);
            producer.Flush(FlushTimeout);
            consumer.Close();
            _consumer = null;
            status.SetAssigned(0);
            LogStopped(instance);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping while still starting: nothing to hand over.
        }
        catch (Exception e)
        {
            LogCrashed(e);
            // The host stops on this exception but would exit with 0: a crash must not look like a clean stop.
            Environment.ExitCode = 1;
            throw;
        }
    }

    private IConsumer<byte[], byte[]> BuildConsumer(string instance, IProducer<byte[], byte[]> producer)
    {
        var config = KafkaClientSettings.AtLeastOnceConsumer(kafkaOptions.Value, names.FanoutGroupId, $"fanout-{instance}");
        // Not each record's topic (librdkafka would hand it over as a new string per record): this
        // consumer reads the ingress topic only, and builds the offsets it stores from its name.
        config.ConsumeResultFields = "headers,timestamp";
        return new ConsumerBuilder<byte[], byte[]>(config)
            .WithLogging(logger)
            .SetPartitionsAssignedHandler((consumer, partitions) =>
            {
                metrics.Rebalanced();
                if (_paused)
                {
                    // Partitions that arrive while paused stay paused.
                    consumer.Pause(partitions);
                }

                status.SetAssigned(consumer.Assignment.Count + partitions.Count);
                var assigned = FormatPartitions(partitions);
                LogAssigned(assigned, status.AssignedPartitions);
            })
            .SetPartitionsRevokedHandler((consumer, partitions) =>
            {
                metrics.Rebalanced();
                // Hand partitions over with as little re-delivery as possible: finish what is
                // in flight, commit what it stored, then let the new owner start from there.
                producer.Flush(FlushTimeout);
                TryCommit(consumer);
                Forget([.. partitions.Select(p => p.Partition.Value)]);
                status.SetAssigned(consumer.Assignment.Count - partitions.Count);
                var revoked = FormatPartitions(partitions.Select(p => p.TopicPartition));
                LogRevoked(revoked, status.AssignedPartitions);
            })
            .SetPartitionsLostHandler((consumer, partitions) =>
            {
                Forget([.. partitions.Select(p => p.Partition.Value)]);
                status.SetAssigned(0);
                var lost = FormatPartitions(partitions.Select(p => p.TopicPartition));
                LogLost(lost);
            })
            .Build();
    }

    /// <summary>
    /// Lets go of partitions this instance no longer owns: their progress, and their records in
    /// every batch on its way (the new owner reads them again from the last commit). Runs on the
    /// consume thread, inside <c>Consume</c>.
    /// </summary>
    private void Forget(HashSet<int> partitions)
    {
        _progress.Remove(partitions);
        _reading.Forget(partitions);
        _held.Forget(partitions);
        _next.Forget(partitions);
    }

    private void ConsumeLoop(IConsumer<byte[], byte[]> consumer, IProducer<byte[], byte[]> producer, CancellationToken stoppingToken)
    {
        // Three batches in turn: while Redis sequences one, the one it sequenced before is
        // dispatched and what the consumer has buffered since is read ahead. Sequencing stays
        // strictly one batch after another (the next batch is sent only once the previous answer
        // is in), so seqs are assigned in ingress order as before.
        var holding = false;

        while (!stoppingToken.IsCancellationRequested)
        {
            if (Volatile.Read(ref _rewindRequested) != 0)
            {
                Rewind(consumer, producer, holding ? _held : null, stoppingToken);
                holding = false;
            }

            if (_pauseRequested != _paused)
            {
                ApplyPause(consumer);
            }

            var full = _progress.InFlight >= _options.MaxInFlightRecords;
            if (full && !holding && _next.Count == 0)
            {
                _capacity.Wait(PollTimeout, stoppingToken);
                continue;
            }

            // The batch read ahead, if any, is the one to sequence now.
            (_reading, _next) = (_next, _reading);
            _next.Clear();
            if (_reading.Count == 0 && !full)
            {
                // With a batch held, take only what is already buffered: the held batch must not
                // wait for traffic that may not come.
                FillBatch(consumer, _reading.Records, _batchLimit, holding ? TimeSpan.Zero : PollTimeout, stoppingToken);
            }

            Task? sequencing = null;
            var sequencingStarted = 0L;
            if (_reading.Count > 0)
            {
                _reading.Group(IsTransient);
                metrics.Batch(_reading.Count);
                var readAt = time.GetUtcNow().ToUnixTimeMilliseconds();
                foreach (var record in _reading.Records)
                {
                    latency.RecordSince(DeliveryHop.IngressToFanout, record.Message.Timestamp.UnixTimestampMs, readAt);
                }

                sequencingStarted = Stopwatch.GetTimestamp();
                sequencing = StartSequencing(_reading);
            }

            if (holding)
            {
                DispatchAll(consumer, producer, _held, stoppingToken);
                holding = false;
            }

            if (sequencing is null)
            {
                continue;
            }

            if (!sequencing.IsCompleted && Volatile.Read(ref _rewindRequested) == 0 && _progress.InFlight < _options.MaxInFlightRecords)
            {
                FillBatch(consumer, _next.Records, _batchLimit, TimeSpan.Zero, stoppingToken);
            }

            if (!CompleteSequencing(sequencing, _reading, stoppingToken))
            {
                return;
            }

            metrics.Sequenced(Stopwatch.GetElapsedTime(sequencingStarted));
            metrics.Lookups(_reading.Channels.Count, sequencer.LastBatchCacheHits);
            _batchLimit = BatchLimit.Next(_reading.Count, _reading.Deliveries(), _options.MaxBatchSize, _options.MaxBatchDeliveries);
            (_held, _reading) = (_reading, _held);
            holding = true;
        }
    }

    /// <summary>Routes a sequenced batch: every record, in ingress order, to its channel's target nodes.</summary>
    private void DispatchAll(IConsumer<byte[], byte[]> consumer, IProducer<byte[], byte[]> producer, ConsumedBatch batch, CancellationToken stoppingToken)
    {
        // In ingress order, so per-partition progress sees offsets ascending.
        var routedAt = time.GetUtcNow().ToUnixTimeMilliseconds();
        var byRecord = batch.ByRecord();
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch.IsDropped(i))
            {
                continue;
            }

            var (work, position) = byRecord[i];
            Dispatch(consumer, producer, batch.Records[i], work, position, routedAt, stoppingToken);
        }

        ProduceBatches(producer, stoppingToken);
        status.RecordBatch(batch.Count);
    }

    /// <summary>Takes what the consumer has buffered, waiting at most <paramref name="timeout"/> for the first record.</summary>
    private static void FillBatch(IConsumer<byte[], byte[]> consumer, List<ConsumeResult<byte[], byte[]>> batch, int limit, TimeSpan timeout, CancellationToken stoppingToken)
    {
        while (batch.Count < limit && !stoppingToken.IsCancellationRequested)
        {
            ConsumeResult<byte[], byte[]>? result;
            try
            {
                result = consumer.Consume(timeout);
            }
            catch (ConsumeException)
            {
                // librdkafka reports partition-level errors here and keeps going; the error
                // handler has already logged them.
                return;
            }

            if (result is null || result.IsPartitionEOF)
            {
                return;
            }

            batch.Add(result);
            timeout = TimeSpan.Zero;
        }
    }

    private static bool IsTransient(Headers? headers) =>
        headers is not null && headers.TryGetLastBytes(IngressHeaders.Transient, out var value) && value is [(byte)'1'];

    private Task StartSequencing(ConsumedBatch batch) => sequencer.SequenceAsync(batch.Channels, batch.Inputs);

    /// <summary>Waits for a batch's sequencing; while Redis cannot answer, asks again (sequencing is idempotent).</summary>
    private bool CompleteSequencing(Task sequencing, ConsumedBatch batch, CancellationToken stoppingToken)
    {
        // Without routes the batch cannot be delivered, and skipping it would lose it: wait
        // for Redis instead. Consumer heartbeats run on librdkafka's threads meanwhile.
        var attempt = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                sequencing.GetAwaiter().GetResult();
                return true;
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                if (attempt++ % 25 == 0)
                {
                    LogRedisUnavailable(e.Message);
                }

                stoppingToken.WaitHandle.WaitOne(_options.RedisRetryDelay);
                sequencing = StartSequencing(batch);
            }
        }

        return false;
    }

    private void Dispatch(
        IConsumer<byte[], byte[]> consumer,
        IProducer<byte[], byte[]> producer,
        ConsumeResult<byte[], byte[]> record,
        ChannelWork work,
        int position,
        long routedAt,
        CancellationToken stoppingToken)
    {
        var partition = record.Partition.Value;
        var offset = record.Offset.Value;
        var seq = work.Seqs[position];
        // Seq -1: sequenced so long ago that it left the index; it was delivered then.
        var targets = seq < 0 ? [] : work.Targets;
        metrics.Targets(targets.Length);
        // One acknowledgement per record: its node-topic record counts the writes to each target (NodeWrites).
        var safe = _progress.Add(partition, offset, targets.Length == 0 ? 0 : 1);
        if (safe >= 0)
        {
            StoreOffset(consumer, partition, safe);
        }

        if (targets.Length == 0)
        {
            return;
        }

        // Traces are sampled where events enter (the publish): a sampled trace continues here and on
        // to the node, an unsampled one is carried over as it came, and a record without a trace
        // starts none here (a root span per routed event would cost more than the routing itself,
        // and its trace would lack the publish).
        var carried = KafkaTraceContext.Read(record.Message.Headers);
        using var activity = carried.TraceParent is null
            ? null
            : PipelineTelemetry.Tracing.StartActivity("route", ActivityKind.Consumer, KafkaTraceContext.Parse(carried.TraceParent, carried.TraceState));
        activity?.SetTag("realtime.targets", targets.Length);
        var (traceparent, tracestate) = activity is not null ? (activity.Id, activity.TraceStateString) : carried;

        // Encoded once, straight into the batch all of the channel's target nodes get.
        var batch = work.TargetBatch ??= BatchFor(targets, partition);
        if (batch.IsEmpty)
        {
            _openBatches.Add(batch);
        }

        batch.Add(_encoder, record.Message.Value, new DeliveryFields(partition, offset, routedAt, (ulong)Math.Max(0, seq), seq == 0 ? string.Empty : work.Epoch, traceparent ?? string.Empty, tracestate ?? string.Empty));
        if (batch.Bytes >= MaxBatchRecordBytes)
        {
            ProduceBatch(producer, batch, stoppingToken);
        }
    }

    private NodeBatch BatchFor(string[] targets, int partition)
    {
        if (!_batches.TryGetValue((targets, partition), out var batch))
        {
            batch = new NodeBatch(targets, partition);
            _batches[(targets, partition)] = batch;
        }

        return batch;
    }

    /// <summary>Produces every node batch the consumed batch filled: one record per node, set of targets and ingress partition.</summary>
    private void ProduceBatches(IProducer<byte[], byte[]> producer, CancellationToken stoppingToken)
    {
        foreach (var batch in _openBatches)
        {
            if (!batch.IsEmpty)
            {
                ProduceBatch(producer, batch, stoppingToken);
            }
        }

        _openBatches.Clear();
        if (_batches.Count > MaxIdleBatches)
        {
            // Batches of target sets no longer seen keep nothing but their buffers; start over now and then.
            _batches.Clear();
        }
    }

    private void ProduceBatch(IProducer<byte[], byte[]> producer, NodeBatch batch, CancellationToken stoppingToken)
    {
        var partition = batch.IngressPartition;
        var (value, offsets) = batch.Take();
        // One value for every target node (librdkafka copies it on Produce). Each node's write is
        // acknowledged on its own, as one delivery of each of these offsets.
        var message = new Message<byte[], byte[]>
        {
            // Keyed by ingress partition: a channel always hashes to one ingress partition, so its
            // events always land in one partition of the node topic, in order.
            Key = PartitionKey(partition),
            Value = value,
            Headers = [new Header(NodeTopicHeaders.Batch, BatchHeaderValue)],
        };
        var generation = _progress.Generation;
        var writes = new NodeWrites(batch.Nodes.Length);
        var started = Stopwatch.GetTimestamp();
        foreach (var node in batch.Nodes)
        {
            var topic = NodeTopic(node);
            if (ProduceWithBackpressure(producer, topic, message, report =>
                {
                    metrics.Produced(Stopwatch.GetElapsedTime(started));
                    Acknowledge(report, writes, generation, partition, offsets);
                }, stoppingToken) is { } refused)
            {
                // Refused before it was sent (e.g. the topic is unknown or not authorized right now):
                // the same as a failed delivery. Its offsets stay unacknowledged, so the rewind re-reads them.
                RequestRewind(topic, refused.Reason, partition, offsets[0]);
            }
        }
    }

    private byte[] PartitionKey(int partition)
    {
        if (!_partitionKeys.TryGetValue(partition, out var key))
        {
            key = Encoding.ASCII.GetBytes($"ingress-{partition}");
            _partitionKeys[partition] = key;
        }

        return key;
    }

    /// <summary>Hands a record to the producer, waiting while its queue is full.</summary>
    /// <returns>Null once the producer has the record (its report follows), or the error it refused it with.</returns>
    private Error? ProduceWithBackpressure(
        IProducer<byte[], byte[]> producer,
        string topic,
        Message<byte[], byte[]> message,
        Action<DeliveryReport<byte[], byte[]>> onDelivered,
        CancellationToken stoppingToken)
    {
        while (true)
        {
            try
            {
                producer.Produce(topic, message, onDelivered);
                return null;
            }
            catch (ProduceException<byte[], byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull && !stoppingToken.IsCancellationRequested)
            {
                _capacity.Wait(PollTimeout, CancellationToken.None);
            }
            catch (ProduceException<byte[], byte[]> e) when (e.Error.Code != ErrorCode.Local_QueueFull)
            {
                return e.Error;
            }
        }
    }

    private void Acknowledge(DeliveryReport<byte[], byte[]> report, NodeWrites writes, int generation, int partition, List<long> offsets)
    {
        if (report.Error.IsError)
        {
            RequestRewind(report.Topic, report.Error.Reason, partition, offsets[0]);
        }
        else if (writes.Acknowledge())
        {
            var safe = _progress.AcknowledgeAll(generation, partition, offsets);
            if (safe >= 0 && _consumer is { } consumer)
            {
                StoreOffset(consumer, partition, safe);
            }
        }

        if (_capacity.CurrentCount == 0)
        {
            _capacity.Release();
        }
    }

    /// <summary>A write to a node topic failed: the consume loop rewinds before it reads on.</summary>
    private void RequestRewind(string topic, string reason, int partition, long firstOffset)
    {
        LogDeliveryFailed(topic, reason, partition, firstOffset);
        Interlocked.Exchange(ref _rewindRequested, 1);
    }

    private void ApplyPause(IConsumer<byte[], byte[]> consumer)
    {
        _paused = _pauseRequested;
        try
        {
            if (_paused)
            {
                consumer.Pause(consumer.Assignment);
            }
            else
            {
                consumer.Resume(consumer.Assignment);
            }

            LogPaused(_paused ? "paused" : "resumed");
        }
        catch (KafkaException e)
        {
            LogSeekFailed(-1, e.Error.Reason);
        }
        finally
        {
            Interlocked.Exchange(ref _pauseApplied, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }

    private void Rewind(IConsumer<byte[], byte[]> consumer, IProducer<byte[], byte[]> producer, ConsumedBatch? held, CancellationToken stoppingToken)
    {
        // Let every outstanding write settle so the progress knows exactly what was delivered,
        // then re-read from the first record that was not. A batch sequenced but not dispatched
        // yet is read again too (sequencing it again returns the same seqs).
        producer.Flush(FlushTimeout);
        Interlocked.Exchange(ref _rewindRequested, 0);
        // A write that keeps failing (a node topic that is unwritable for a while) must not turn
        // into a hot loop of re-reads; a rewind is rare enough that a short pause costs nothing.
        stoppingToken.WaitHandle.WaitOne(RewindPause);
        var seekTo = _progress.Rewind();
        // Earliest first, so each partition goes back to its first record not yet delivered: what
        // is in flight, then the batch sequenced but not dispatched, then the batch read ahead.
        foreach (var (partition, offset) in (held?.FirstOffsets() ?? []).Concat(_next.FirstOffsets()))
        {
            seekTo.TryAdd(partition, offset);
        }

        _next.Clear();

        foreach (var (partition, offset) in seekTo)
        {
            try
            {
                consumer.Seek(new TopicPartitionOffset(names.IngressTopic, partition, offset));
                LogRewound(partition, offset);
            }
            catch (KafkaException e)
            {
                LogSeekFailed(partition, e.Error.Reason);
            }
        }
    }

    private void StoreOffset(IConsumer<byte[], byte[]> consumer, int partition, long offset)
    {
        try
        {
            consumer.StoreOffset(new TopicPartitionOffset(names.IngressTopic, partition, offset));
        }
        catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_State)
        {
            // The partition was revoked meanwhile; its new owner re-reads from the last commit.
        }
        catch (ObjectDisposedException)
        {
            // A late delivery report after shutdown: the group re-reads from the last commit.
        }
    }

    private void TryCommit(IConsumer<byte[], byte[]> consumer)
    {
        try
        {
            consumer.Commit();
        }
        catch (KafkaException e)
        {
            LogCommitSkipped(e.Error.Reason);
        }
    }

    private string NodeTopic(string node)
    {
        if (!_nodeTopics.TryGetValue(node, out var topic))
        {
            topic = names.NodeTopic(node);
            _nodeTopics[node] = topic;
        }

        return topic;
    }

    private static string FormatPartitions(IEnumerable<TopicPartition> partitions) =>
        string.Join(',', partitions.Select(p => p.Partition.Value).Order());

    public override void Dispose()
    {
        _capacity.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "Fanout {Instance} consuming {Topic} in group {Group}")]
    private partial void LogStarted(string instance, string topic, string group);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Fanout assigned partitions [{Partitions}]; owns {Count}")]
    private partial void LogAssigned(string partitions, int count);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Fanout revoked partitions [{Partitions}]; owns {Count}")]
    private partial void LogRevoked(string partitions, int count);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "Fanout lost partitions [{Partitions}]")]
    private partial void LogLost(string partitions);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Redis cannot sequence and route ({Reason}); retrying, ingress consumption paused")]
    private partial void LogRedisUnavailable(string reason);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Error, Message = "Write to {Topic} failed ({Reason}) for ingress {Partition}@{Offset}; rewinding")]
    private partial void LogDeliveryFailed(string topic, string reason, int partition, long offset);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Warning, Message = "Rewound ingress partition {Partition} to offset {Offset}")]
    private partial void LogRewound(int partition, long offset);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Error, Message = "Could not rewind ingress partition {Partition}: {Reason}")]
    private partial void LogSeekFailed(int partition, string reason);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Debug, Message = "Commit on revoke skipped: {Reason}")]
    private partial void LogCommitSkipped(string reason);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Information, Message = "Fanout {Instance} stopping: flushing writes and leaving the group")]
    private partial void LogStopping(string instance);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Information, Message = "Fanout {Instance} stopped")]
    private partial void LogStopped(string instance);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Warning, Message = "Fanout routing {State} by an operator")]
    private partial void LogPaused(string state);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Critical, Message = "Fanout consume loop crashed")]
    private partial void LogCrashed(Exception exception);
}
