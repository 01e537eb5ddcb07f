using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Google.Protobuf;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Hosting;
using StackExchange.Redis;

namespace Realtime.Bench.Workloads;

/// <summary>
/// W5 (ours only): the fanout router alone. Events per second one fanout instance routes from the
/// ingress topic to node topics when every event goes to 1, 10 or 100 target nodes.
/// </summary>
/// <remarks>
/// <para>
/// Per node count N: N synthetic gateway nodes are registered in Redis exactly as a gateway does it
/// (liveness key with its TTL refreshed by a heartbeat, the <c>nodes</c> listing, stats, and for every
/// channel of the run the route set entry plus the node's own route list), with their delivery topics
/// created the way a gateway gets its topic (a metadata request that may create it). Nobody consumes
/// those topics. The fanout is paused (<c>POST /admin/pause</c>), the run's events are written into
/// the ingress topic as valid <c>EventEnvelope</c> records keyed by channel (idempotent, acks=all
/// producer), then the fanout is resumed. Node-topic records carry batches of deliveries, so the run is
/// done when the fanout group has committed all of it (an offset is stored only once every node record
/// carrying it was acknowledged), and the routing time is the last node-topic watermark movement before
/// that. The records are then read back and their deliveries counted per node and event (lost and
/// duplicated ones), which is why a run must also fit what a node topic retains. The rates count from the
/// first routed record (a paused librdkafka consumer needs 0.3-1 s after Resume before it fetches again,
/// which is the pause, not the routing); the rates from the resume request are reported too.
/// </para>
/// <para>
/// Channels are spread evenly over the ingress partitions (channel i to partition i mod P, key = channel,
/// so a channel still lives in one partition, which is all the sequencer relies on). The events of a run
/// must fit the embedded broker's per-partition retention (about 5 MiB) while the fanout is paused: the
/// run checks that no partition's log start moved past the run's first offset.
/// </para>
/// </remarks>
internal static class Router
{
    private const string Subject = "bench-w5";
    private const string NodePrefix = "w5-node-";
    private const int MinWarmUpRounds = 3;
    private const int MaxWarmUpRounds = 10;
    private static readonly TimeSpan LivenessTtl = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan StallLimit = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan KafkaTimeout = TimeSpan.FromSeconds(10);

    public static async Task<JsonObject> RunAsync(Args options, bool quick, CancellationToken cancellationToken)
    {
        var settings = Settings.From(options, quick);
        var names = new PipelineNames(settings.Namespace);
        var kafka = new KafkaOptions { BootstrapServers = settings.Kafka };
        var redisOptions = ConfigurationOptions.Parse(settings.Redis);
        redisOptions.ClientName = "bench-w5";
        await using var redis = await ConnectionMultiplexer.ConnectAsync(redisOptions);
        var redisPort = redisOptions.EndPoints.OfType<System.Net.IPEndPoint>().FirstOrDefault()?.Port
            ?? redisOptions.EndPoints.OfType<System.Net.DnsEndPoint>().FirstOrDefault()?.Port ?? 6379;
        var stack = StackProcesses(settings, redisPort);
        if (!stack.Any(p => p.Name == "fanout"))
        {
            throw new InvalidOperationException($"no fanout process serving {settings.FanoutUrl} found: is the stack `./realtime.sh up` starts running?");
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var admin = new AdminClientBuilder(KafkaClientSettings.Admin(kafka, "bench-w5-admin")).SetLogHandler((_, _) => { }).Build();
        using var positions = new ConsumerBuilder<Ignore, Ignore>(KafkaClientSettings.PositionReader(kafka, names.FanoutGroupId, "bench-w5-position"))
            .SetLogHandler((_, _) => { }).Build();
        var ingress = Partitions(admin, names.IngressTopic);
        var maxNodes = settings.NodeCounts.Max();
        var nodes = Enumerable.Range(0, maxNodes).Select(i => $"{NodePrefix}{i:D3}").ToArray();
        var nodePartitions = EnsureNodeTopics(kafka, names, nodes);

        var runs = new JsonArray();
        long expected = 0, delivered = 0;
        var context = new RunContext(settings, names, kafka, redis.GetDatabase(), http, admin, positions, stack, ingress);
        if (!quick)
        {
            // A fanout that has just started runs its first batches through the JIT's first tiers: run
            // alone, W5 measured 15, 8.4 and 7 µs of fanout CPU per event in three rounds one after
            // another, and a fanout started just before W5 was still at 8.4 after three. Warm it
            // with rounds that are not reported until its CPU per event settles (two rounds in a
            // row within 10% of each other, at least three, at most ten), then measure.
            var warmUpNodes = Math.Min(10, maxNodes);
            var previous = double.MaxValue;
            for (var round = 1; round <= MaxWarmUpRounds; round++)
            {
                await WaitCommittedAsync(positions, admin, ingress, null, TimeSpan.FromSeconds(60), cancellationToken);
                var warmUp = await RunOnceAsync(context, nodes[..warmUpNodes], nodePartitions, (int)Math.Min(settings.Events, settings.MaxOutputRecords / warmUpNodes), cancellationToken);
                var micros = (double?)warmUp["fanoutCpuMicrosPerEvent"] ?? 0;
                Console.WriteLine($"W5 warm-up {round} ({warmUpNodes} target nodes, not reported): {warmUp["eventsPerSecond"]} events/s, fanout {micros} µs per event");
                if (round >= MinWarmUpRounds && WarmUp.Settled(previous, micros))
                {
                    break;
                }

                previous = micros;
            }
        }

        var total = new Measurement(() => stack);
        total.Start();
        // Single runs of a second or so vary by a quarter either way on two shared cores: each node
        // count runs several times and the median stands for it.
        for (var repeat = 0; repeat < settings.Repeats; repeat++)
        {
            foreach (var count in settings.NodeCounts)
            {
                // Whatever is still in the ingress topic would be routed in our window: let the fanout finish it first.
                var caughtUp = await WaitCommittedAsync(positions, admin, ingress, null, TimeSpan.FromSeconds(60), cancellationToken);
                var events = (int)Math.Min(settings.Events, settings.MaxOutputRecords / count);
                var run = await RunOnceAsync(context, nodes[..count], nodePartitions, events, cancellationToken);
                run["fanoutCaughtUpBefore"] = caughtUp is not null;
                run["repeat"] = repeat + 1;
                runs.Add(run);
                expected += (long)run["outputRecords"]!;
                delivered += (long)run["delivered"]!;
                Console.WriteLine($"W5 {count} target node(s), run {repeat + 1}/{settings.Repeats}: {events} events routed {run["seconds"]} s after resume (first record at {run["firstOutputSeconds"]} s): {run["eventsPerSecond"]} events/s, {run["outputRecordsPerSecond"]} records/s; fanout {run["fanoutCpuSeconds"]} CPU s; lost {run["lost"]}");
            }
        }

        var parameters = new JsonObject
        {
            ["targetNodes"] = new JsonArray([.. settings.NodeCounts.Select(n => JsonValue.Create(n))]),
            ["events"] = settings.Events,
            ["maxOutputRecordsPerRun"] = settings.MaxOutputRecords,
            ["channels"] = settings.Channels,
            ["ingressPartitions"] = ingress.Count,
            ["nodeTopicPartitions"] = nodePartitions.Count == 0 ? 0 : nodePartitions.Values.First().Count,
            ["routing"] = "every channel is routed to every target node: outputRecords = events x targetNodes",
            ["repeats"] = settings.Repeats,
        };
        var report = total.Finish("W5", "realtime", parameters, expected, delivered, withLatency: false);
        report["window"] = "top level: the whole workload (setup, pre-producing and routing of every run); runs[]: each run's routing window only";
        report["runs"] = runs;
        var byNodes = new JsonObject();
        foreach (var count in settings.NodeCounts)
        {
            byNodes[count.ToString(CultureInfo.InvariantCulture)] = MedianRate(runs, count);
        }

        // The median run per node count.
        report["eventsPerSecondByTargetNodes"] = byNodes;
        report["duplicates"] = runs.Sum(r => (long)r!["duplicates"]!);
        report["allRunsValid"] = runs.All(r => (bool)r!["valid"]!);
        if (MedianRate(runs, 10) is { } ten)
        {
            report["goal"] = new JsonObject
            {
                ["targetNodes"] = 10,
                ["eventsPerSecond"] = 200_000,
                ["measured"] = ten,
                ["met"] = ten >= 200_000,
            };
        }

        return report;
    }

    private static double? MedianRate(JsonArray runs, int targetNodes)
    {
        var rates = runs.Where(r => (int)r!["targetNodes"]! == targetNodes).Select(r => (double)r!["eventsPerSecond"]!).Order().ToList();
        return rates.Count == 0 ? null : rates[rates.Count / 2];
    }

    /// <summary>CPU seconds per second of the stack and this generator between the first routed record and now.</summary>
    private static double? RoutingCores((List<ProcessSample> Processes, TimeSpan GeneratorCpu, TimeSpan At)? start, List<ProcessSample> end, TimeSpan now)
    {
        if (start is not { } first || now - first.At < TimeSpan.FromMilliseconds(50))
        {
            return null;
        }

        var stack = end.Sum(e => e.CpuSeconds - (first.Processes.FirstOrDefault(p => p.Pid == e.Pid)?.CpuSeconds ?? e.CpuSeconds));
        var generator = (Process.GetCurrentProcess().TotalProcessorTime - first.GeneratorCpu).TotalSeconds;
        return (stack + generator) / (now - first.At).TotalSeconds;
    }

    private sealed record RunContext(
        Settings Settings,
        PipelineNames Names,
        KafkaOptions Kafka,
        IDatabase Db,
        HttpClient Http,
        IAdminClient Admin,
        IConsumer<Ignore, Ignore> Positions,
        IReadOnlyList<(string Name, int Pid)> Stack,
        IReadOnlyList<TopicPartition> Ingress);

    private static async Task<JsonObject> RunOnceAsync(
        RunContext context,
        string[] nodes,
        Dictionary<string, List<TopicPartition>> nodePartitions,
        int events,
        CancellationToken cancellationToken)
    {
        var (settings, names, db) = (context.Settings, context.Names, context.Db);
        var runId = Guid.NewGuid().ToString("N")[..8];
        var channels = Enumerable.Range(0, settings.Channels).Select(i => $"bench:w5-{runId}-{nodes.Length}:{i}").ToArray();
        var outputs = nodes.SelectMany(n => nodePartitions[names.NodeTopic(n)]).ToList();
        await using var registration = await SyntheticNodes.RegisterAsync(db, names, nodes, channels);
        try
        {
            await FanoutAsync(context.Http, settings.FanoutUrl, "pause", cancellationToken);
            var ingressStart = await OffsetsAsync(context.Admin, context.Ingress, OffsetSpec.Latest());
            var producing = Stopwatch.StartNew();
            var (produceFailures, recordBytes) = Produce(context.Kafka, names.IngressTopic, context.Ingress, channels, events);
            var producedSeconds = producing.Elapsed.TotalSeconds;
            var ingressEnd = await OffsetsAsync(context.Admin, context.Ingress, OffsetSpec.Latest());
            var ingressLow = await OffsetsAsync(context.Admin, context.Ingress, OffsetSpec.Earliest());
            var written = context.Ingress.Sum(p => ingressEnd[p] - ingressStart[p]);
            if (produceFailures > 0 || written != events)
            {
                throw new InvalidOperationException($"pre-producing failed: {produceFailures} failed produces, {written} records written to {names.IngressTopic} instead of {events} (is something else writing to it?)");
            }

            if (context.Ingress.FirstOrDefault(p => ingressLow[p] > ingressStart[p]) is { } trimmed)
            {
                throw new InvalidOperationException($"the embedded broker dropped records of this run from {trimmed} before they were routed (log start {ingressLow[trimmed]} > first offset {ingressStart[trimmed]}): lower --events (the limit is about 5 MiB per ingress partition)");
            }

            var before = await OffsetsAsync(context.Admin, outputs, OffsetSpec.Latest());
            var expected = (long)events * nodes.Length;
            var measurement = new Measurement(() => context.Stack);
            var fanoutBefore = ProcessOf(context.Stack, "fanout");
            measurement.Start();
            var clock = Stopwatch.StartNew();
            await FanoutAsync(context.Http, settings.FanoutUrl, "resume", cancellationToken);
            var resumeSeconds = clock.Elapsed.TotalSeconds;

            // Node-topic records carry batches of deliveries, so watermarks say when routing moved,
            // not how much: the end is when the fanout group has committed the whole run (it stores
            // an offset only once every node record carrying it is acknowledged), and the routing
            // time is the last watermark movement before that. Deliveries are counted afterwards.
            double? firstOutput = null;
            (List<ProcessSample> Processes, TimeSpan GeneratorCpu, TimeSpan At)? routingStart = null;
            var lastMove = TimeSpan.Zero;
            var polls = 0;
            var polling = TimeSpan.Zero;
            var previous = before;
            var committedAll = false;
            while (clock.Elapsed - lastMove < StallLimit || firstOutput is null && clock.Elapsed < StallLimit)
            {
                var asked = clock.Elapsed;
                var now = await OffsetsAsync(context.Admin, outputs, OffsetSpec.Latest());
                polls++;
                polling += clock.Elapsed - asked;
                if (outputs.Any(p => now[p] != previous[p]))
                {
                    lastMove = clock.Elapsed;
                    if (firstOutput is null)
                    {
                        routingStart = (measurement.Snapshot(), Process.GetCurrentProcess().TotalProcessorTime, clock.Elapsed);
                    }

                    firstOutput ??= lastMove.TotalSeconds;
                }

                previous = now;
                if (polls % 5 == 0 && IsCommitted(context.Positions, context.Ingress, ingressEnd))
                {
                    committedAll = true;
                    break;
                }

                await Task.Delay(PollInterval, cancellationToken);
            }

            var seconds = Math.Max(lastMove.TotalSeconds, 0.001);
            var end = measurement.Stop();
            var routingCores = RoutingCores(routingStart, end, clock.Elapsed);
            var fanoutAfter = end.FirstOrDefault(p => p.Name == "fanout");
            var (delivered, duplicates, records) = CountDeliveries(context.Kafka, outputs, before, previous, events);
            var run = measurement.Finish("W5", "realtime", new JsonObject { ["targetNodes"] = nodes.Length, ["events"] = events }, expected, delivered, withLatency: false);

            // Acknowledged by every node topic and committed (auto-commit every 500 ms): the next run starts clean.
            var committed = committedAll ? 0 : await WaitCommittedAsync(context.Positions, context.Admin, context.Ingress, ingressEnd, StallLimit, cancellationToken);
            var sequenced = await SequencedAsync(db, names, channels);
            var fanoutCpu = fanoutAfter is not null && fanoutBefore is not null ? fanoutAfter.CpuSeconds - fanoutBefore.CpuSeconds : (double?)null;
            // From the first routed record on: a paused librdkafka consumer takes 0.3-1 s after Resume to fetch
            // again (measured with the fanout's consumer settings alone), which is the pause, not the routing.
            var running = firstOutput is { } first && seconds > first ? delivered / (seconds - first) : delivered / seconds;
            var summary = new JsonObject
            {
                ["targetNodes"] = nodes.Length,
                ["events"] = events,
                ["channels"] = channels.Length,
                ["outputRecords"] = expected,
                ["delivered"] = delivered,
                ["lost"] = Math.Max(0, expected - delivered),
                ["duplicates"] = duplicates,
                ["sequenced"] = sequenced,
                ["seconds"] = Math.Round(seconds, 3),
                ["eventsPerSecond"] = Math.Round(running / nodes.Length, 0),
                // (event, node) deliveries per second, and the node-topic records that carried them.
                ["outputRecordsPerSecond"] = Math.Round(running, 0),
                ["nodeRecords"] = records,
                ["deliveriesPerNodeRecord"] = records > 0 ? Math.Round(delivered / (double)records, 1) : null,
                // The whole window, from the resume request: includes the consumer's resume latency.
                ["eventsPerSecondFromResume"] = Math.Round(delivered / (double)nodes.Length / seconds, 0),
                ["resumeSeconds"] = Math.Round(resumeSeconds, 3),
                ["firstOutputSeconds"] = firstOutput is { } f ? Math.Round(f, 3) : null,
                // How finely the end was seen: watermark polls and their mean round trip.
                ["watermarkPolls"] = polls,
                ["watermarkPollMilliseconds"] = Math.Round(polling.TotalMilliseconds / Math.Max(1, polls), 2),
                ["committedSeconds"] = committed is { } c ? Math.Round(seconds + c, 3) : null,
                ["fanoutCpuSeconds"] = fanoutCpu is { } cpu ? Math.Round(cpu, 3) : null,
                ["fanoutCores"] = fanoutCpu is { } busy ? Math.Round(busy / seconds, 2) : null,
                ["fanoutCpuMicrosPerEvent"] = fanoutCpu is { } perEvent && delivered > 0 ? Math.Round(perEvent * 1e6 * nodes.Length / delivered, 2) : null,
                ["fanoutPeakRssMiB"] = fanoutAfter is not null ? Math.Round(fanoutAfter.PeakRssKiB / 1024.0, 1) : null,
                ["ingressRecordBytes"] = Math.Round(recordBytes, 1),
                ["preProduceSeconds"] = Math.Round(producedSeconds, 3),
                ["cpuSeconds"] = run["cpuSeconds"]?.DeepClone(),
                // The measured window runs from just before the resume to the moment the commit was
                // seen, so it is a little longer than the routing time.
                ["windowSeconds"] = run["seconds"]?.DeepClone(),
                // From the first routed record to the commit: the cores the stack and the generator
                // used while the fanout was routing (the machine has Environment.ProcessorCount), which
                // shows whether routing was bound by CPU.
                ["routingCoresBusy"] = routingCores is { } cores ? Math.Round(cores, 2) : null,
                ["cpuSecondsPerMillionDeliveries"] = run["cpuSecondsPerMillionDeliveries"]?.DeepClone(),
                ["generatorCpuShare"] = run["generatorCpuShare"]?.DeepClone(),
                ["valid"] = run["valid"]?.DeepClone(),
                ["processes"] = run["processes"]?.DeepClone(),
            };
            return summary;
        }
        finally
        {
            // Whatever happened, routing is not left paused and the run's channel state goes.
            try
            {
                await FanoutAsync(context.Http, settings.FanoutUrl, "resume", CancellationToken.None);
                await registration.ForgetChannelsAsync();
            }
            catch (Exception e) when (e is HttpRequestException or InvalidOperationException or RedisException or TimeoutException)
            {
                Console.Error.WriteLine($"W5: clean-up after the {nodes.Length}-node run failed: {e.Message}");
            }
        }
    }

    /// <summary>
    /// Writes the run's events into the ingress topic: valid envelopes, keyed by channel, round robin
    /// over the channels, channel i in ingress partition i mod P. Returns failed produces and the mean
    /// record size (key + value).
    /// </summary>
    private static (long Failures, double RecordBytes) Produce(KafkaOptions kafka, string topic, IReadOnlyList<TopicPartition> partitions, string[] channels, int events)
    {
        var config = KafkaClientSettings.DurableProducer(kafka, "bench-w5-ingress");
        // A batch producer (same durability as a gateway's): fewer, larger requests.
        config.LingerMs = 5;
        config.BatchSize = 1_000_000;
        config.QueueBufferingMaxMessages = 1_000_000;
        config.QueueBufferingMaxKbytes = 1_048_576;
        long failures = 0, bytes = 0;
        using var producer = new ProducerBuilder<byte[], byte[]>(config).SetLogHandler((_, _) => { }).Build();
        var keys = channels.Select(Encoding.UTF8.GetBytes).ToArray();
        void OnReport(DeliveryReport<byte[], byte[]> report)
        {
            if (report.Error.IsError)
            {
                Interlocked.Increment(ref failures);
            }
        }

        for (var n = 0; n < events; n++)
        {
            var c = n % channels.Length;
            var now = DateTimeOffset.UtcNow;
            var envelope = new EventEnvelope
            {
                EventId = Guid.CreateVersion7(now).ToString("N"),
                Channel = channels[c],
                EventType = "bench",
                Payload = ByteString.CopyFromUtf8($"{{\"t\":{Clock.NowMicros()},\"n\":{n}}}"),
                ContentType = "application/json",
                SchemaVersion = 1,
                PublishedAtUnixMs = now.ToUnixTimeMilliseconds(),
                Publisher = new PublisherIdentity { Subject = Subject, NodeId = "bench", Origin = PublishOrigin.Grpc },
            }.ToByteArray();
            bytes += keys[c].Length + envelope.Length;
            var message = new Message<byte[], byte[]> { Key = keys[c], Value = envelope };
            var partition = new TopicPartition(topic, partitions[c % partitions.Count].Partition);
            while (true)
            {
                try
                {
                    producer.Produce(partition, message, OnReport);
                    break;
                }
                catch (ProduceException<byte[], byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    producer.Poll(TimeSpan.FromMilliseconds(50));
                }
            }
        }

        if (producer.Flush(TimeSpan.FromSeconds(60)) > 0)
        {
            throw new InvalidOperationException("pre-producing did not finish within 60 s");
        }

        return (Interlocked.Read(ref failures), bytes / (double)Math.Max(1, events));
    }

    /// <summary>
    /// Creates the synthetic nodes' delivery topics the way a gateway gets its own: a metadata request
    /// from a client that allows auto-creation (the embedded broker creates them with 4 partitions).
    /// </summary>
    private static Dictionary<string, List<TopicPartition>> EnsureNodeTopics(KafkaOptions kafka, PipelineNames names, string[] nodes)
    {
        var config = KafkaClientSettings.PositionReader(kafka, "bench-w5", "bench-w5-topics");
        config.AllowAutoCreateTopics = true;
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(config).SetLogHandler((_, _) => { }).Build();
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var result = new Dictionary<string, List<TopicPartition>>(StringComparer.Ordinal);
        foreach (var node in nodes)
        {
            var topic = names.NodeTopic(node);
            for (var attempt = 0; ; attempt++)
            {
                var found = admin.GetMetadata(topic, KafkaTimeout).Topics.FirstOrDefault(t => t.Topic == topic);
                if (found is { Partitions.Count: > 0 } && found.Error.Code == ErrorCode.NoError)
                {
                    result[topic] = [.. found.Partitions.Select(p => new TopicPartition(topic, p.PartitionId)).OrderBy(p => p.Partition.Value)];
                    break;
                }

                if (attempt == 50)
                {
                    throw new InvalidOperationException($"topic {topic} was not created ({found?.Error.Reason ?? "not in metadata"})");
                }

                Thread.Sleep(100);
            }
        }

        return result;
    }

    private static List<TopicPartition> Partitions(IAdminClient admin, string topic)
    {
        var found = admin.GetMetadata(topic, KafkaTimeout).Topics.FirstOrDefault(t => t.Topic == topic);
        if (found is not { Partitions.Count: > 0 } || found.Error.IsError)
        {
            throw new InvalidOperationException($"topic {topic} not found ({found?.Error.Reason})");
        }

        return [.. found.Partitions.Select(p => new TopicPartition(topic, p.PartitionId)).OrderBy(p => p.Partition.Value)];
    }

    /// <summary>Offsets of many partitions in one ListOffsets round trip per broker.</summary>
    private static async Task<Dictionary<TopicPartition, long>> OffsetsAsync(IAdminClient admin, IReadOnlyList<TopicPartition> partitions, OffsetSpec spec)
    {
        var result = await admin.ListOffsetsAsync(
            partitions.Select(p => new TopicPartitionOffsetSpec { TopicPartition = p, OffsetSpec = spec }),
            new ListOffsetsOptions { RequestTimeout = KafkaTimeout });
        return result.ResultInfos.ToDictionary(r => r.TopicPartitionOffsetError.TopicPartition, r => r.TopicPartitionOffsetError.Offset.Value);
    }

    /// <summary>
    /// Waits until the fanout group's committed offsets reach <paramref name="targets"/> (or, when null,
    /// the current end of every non-empty partition). Returns the seconds waited, or null on timeout.
    /// </summary>
    private static async Task<double?> WaitCommittedAsync(
        IConsumer<Ignore, Ignore> positions,
        IAdminClient admin,
        IReadOnlyList<TopicPartition> partitions,
        Dictionary<TopicPartition, long>? targets,
        TimeSpan limit,
        CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        Dictionary<TopicPartition, long>? low = null;
        if (targets is null)
        {
            targets = await OffsetsAsync(admin, partitions, OffsetSpec.Latest());
            low = await OffsetsAsync(admin, partitions, OffsetSpec.Earliest());
        }

        while (true)
        {
            var committed = positions.Committed(partitions, KafkaTimeout).ToDictionary(c => c.TopicPartition, c => c.Offset.Value);
            if (partitions.All(p => committed[p] >= targets[p] || (low is not null && low[p] >= targets[p])))
            {
                return clock.Elapsed.TotalSeconds;
            }

            if (clock.Elapsed > limit)
            {
                return null;
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    private static bool IsCommitted(IConsumer<Ignore, Ignore> positions, IReadOnlyList<TopicPartition> partitions, Dictionary<TopicPartition, long> targets) =>
        positions.Committed(partitions, KafkaTimeout).All(c => c.Offset.Value >= targets[c.TopicPartition]);

    /// <summary>
    /// Reads the run's node-topic records back and counts the deliveries they carry, per node and
    /// event: how many (event, node) pairs arrived, how many arrived more than once, and in how
    /// many records. Outside the timed window.
    /// </summary>
    private static (long Delivered, long Duplicates, long Records) CountDeliveries(
        KafkaOptions kafka,
        IReadOnlyList<TopicPartition> outputs,
        Dictionary<TopicPartition, long> from,
        Dictionary<TopicPartition, long> to,
        int events)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = kafka.BootstrapServers,
            GroupId = $"w5-count-{Guid.NewGuid():N}",
            EnableAutoCommit = false,
            EnablePartitionEof = true,
            AllowAutoCreateTopics = false,
            // Records the broker already dropped are counted as lost, not skipped silently.
            AutoOffsetReset = AutoOffsetReset.Earliest,
        };
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(config).Build();
        var wanted = outputs.Where(p => to[p] > from[p]).ToList();
        consumer.Assign(wanted.Select(p => new TopicPartitionOffset(p, from[p])));
        var seen = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        long delivered = 0, duplicates = 0, records = 0;
        var done = new HashSet<TopicPartition>();
        var deadline = Stopwatch.StartNew();
        while (done.Count < wanted.Count && deadline.Elapsed < TimeSpan.FromSeconds(120))
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(500));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF || result.Offset.Value >= to[result.TopicPartition])
            {
                done.Add(result.TopicPartition);
                consumer.Pause([result.TopicPartition]);
                continue;
            }

            records++;
            var node = result.Topic;
            if (!seen.TryGetValue(node, out var ids))
            {
                ids = new HashSet<string>(events, StringComparer.Ordinal);
                seen[node] = ids;
            }

            foreach (var delivery in NodeDeliveryBatch.Parser.ParseFrom(result.Message.Value).Deliveries)
            {
                if (ids.Add(delivery.Event.EventId))
                {
                    delivered++;
                }
                else
                {
                    duplicates++;
                }
            }
        }

        consumer.Close();
        return (delivered, duplicates, records);
    }

    /// <summary>How many events the fanout sequenced on the run's channels (their <c>seq</c>s).</summary>
    private static async Task<long> SequencedAsync(IDatabase db, PipelineNames names, string[] channels)
    {
        var batch = db.CreateBatch();
        var reads = channels.Select(c => batch.HashGetAsync(names.ChannelStateKey(c), "seq")).ToArray();
        batch.Execute();
        await Task.WhenAll(reads);
        return reads.Sum(r => r.Result.IsNull ? 0 : (long)r.Result);
    }

    private static async Task FanoutAsync(HttpClient http, string fanoutUrl, string action, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsync(new Uri($"{fanoutUrl}/admin/{action}"), null, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"POST {fanoutUrl}/admin/{action} answered {(int)response.StatusCode}");
        }
    }

    private static ProcessSample? ProcessOf(IReadOnlyList<(string Name, int Pid)> stack, string name) =>
        stack.FirstOrDefault(p => p.Name == name) is { Pid: > 0 } process ? ProcessSample.Read(process.Name, process.Pid) : null;

    /// <summary>
    /// The processes of the stack under test only (other stacks, e.g. a test run's, may run on the same
    /// machine, so command lines are not enough): each one found by the loopback port it listens on, the
    /// fanout by its HTTP port, the broker by the bootstrap port, redis-server by its port and the gateways
    /// by the ports `./realtime.sh up` gives them.
    /// </summary>
    private static List<(string Name, int Pid)> StackProcesses(Settings settings, int redisPort)
    {
        var ports = new List<(string Name, int Port)>
        {
            ("fanout", new Uri(settings.FanoutUrl).Port),
            ("kafka (embedded)", int.Parse(settings.Kafka.Split(',')[0].Trim().Split(':')[^1], CultureInfo.InvariantCulture)),
            ("redis-server", redisPort),
            ("gateway gw-0", 8080),
            ("gateway gw-1", 8081),
        };
        var listening = ListeningSockets();
        var wanted = ports.Where(p => listening.ContainsKey(p.Port)).ToDictionary(p => listening[p.Port], p => p.Name);
        var found = new List<(string Name, int Pid)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || wanted.Count == 0)
            {
                continue;
            }

            try
            {
                foreach (var fd in Directory.EnumerateFileSystemEntries(Path.Combine(dir, "fd")))
                {
                    var target = new FileInfo(fd).LinkTarget;
                    if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal)
                        && long.TryParse(target.AsSpan(8, target.Length - 9), CultureInfo.InvariantCulture, out var inode)
                        && wanted.Remove(inode, out var name))
                    {
                        found.Add((name, pid));
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A process that ended meanwhile, or one we may not look into.
            }
        }

        return found;
    }

    /// <summary>Port to socket inode of every listening TCP socket (IPv4 and IPv6), from /proc/net.</summary>
    private static Dictionary<int, long> ListeningSockets()
    {
        var sockets = new Dictionary<int, long>();
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(table))
            {
                continue;
            }

            foreach (var line in File.ReadLines(table).Skip(1))
            {
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 9 && fields[3] == "0A")
                {
                    var port = int.Parse(fields[1].AsSpan(fields[1].IndexOf(':') + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    sockets.TryAdd(port, long.Parse(fields[9], CultureInfo.InvariantCulture));
                }
            }
        }

        return sockets;
    }

    /// <summary>What W5 measures and where the stack is: options, then the environment, then <c>.run/stack.env</c>.</summary>
    private sealed record Settings(
        IReadOnlyList<int> NodeCounts,
        int Repeats,
        int Events,
        long MaxOutputRecords,
        int Channels,
        string Namespace,
        string Kafka,
        string Redis,
        string FanoutUrl)
    {
        public static Settings From(Args options, bool quick)
        {
            int Int(string name, int quickValue, int fullValue) =>
                int.Parse(options.Get(name) ?? (quick ? quickValue : fullValue).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
            var counts = (options.Get("nodes") ?? "1,10,100")
                .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(n => int.Parse(n, CultureInfo.InvariantCulture))
                .ToList();
            if (counts.Count == 0 || counts.Any(n => n is < 1 or > 999))
            {
                throw new ArgumentException("--nodes takes node counts of 1-999, e.g. 1,10,100");
            }

            return new Settings(
                counts,
                Int("repeats", 1, 3),
                // The embedded broker keeps 5 MiB per partition: a node topic (4 partitions) holds about
                // 80,000 deliveries of this size, and they are read back to be counted.
                Int("events", 20_000, 50_000),
                Int("max-output-records", 200_000, 500_000),
                // Not --channels: `./realtime.sh bench` hands its options to every workload, and W3's channels are another thing.
                Int("router-channels", 100, 100),
                options.Get("namespace") ?? PipelineNames.DefaultNamespace,
                options.Get("kafka") ?? Environment.GetEnvironmentVariable("Kafka__BootstrapServers") ?? FromStackEnv("Kafka__BootstrapServers") ?? "127.0.0.1:9092",
                options.Get("redis") ?? Environment.GetEnvironmentVariable("Redis__Configuration") ?? FromStackEnv("Redis__Configuration")
                    ?? throw new ArgumentException("where is Redis? pass --redis HOST:PORT, set Redis__Configuration or run from the checkout whose .run/stack.env `./realtime.sh up` wrote"),
                (options.Get("fanout") ?? "http://127.0.0.1:8090").TrimEnd('/'));
        }

        /// <summary>A value from the <c>export A=x B=y</c> line `./realtime.sh up` writes to .run/stack.env.</summary>
        private static string? FromStackEnv(string name)
        {
            var path = Path.Combine(".run", "stack.env");
            if (!File.Exists(path))
            {
                return null;
            }

            foreach (var word in File.ReadAllText(path).Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries))
            {
                if (word.StartsWith(name + "=", StringComparison.Ordinal))
                {
                    return word[(name.Length + 1)..].Trim('\'', '"');
                }
            }

            return null;
        }
    }

    /// <summary>
    /// Synthetic gateway nodes in the routing table, written as <c>RouteRegistry</c> writes a gateway's
    /// rows: at start the node clears routes a previous life left and heartbeats (liveness key with TTL,
    /// the <c>nodes</c> listing, stats), then adds its route for every channel; a heartbeat every 2 s
    /// keeps the liveness key; at the end it marks itself dead and removes its routes.
    /// </summary>
    private sealed class SyntheticNodes : IAsyncDisposable
    {
        private readonly IDatabase _db;
        private readonly PipelineNames _names;
        private readonly string[] _nodes;
        private readonly string[] _channels;
        private readonly CancellationTokenSource _stop = new();
        private Task _heartbeats = Task.CompletedTask;

        private SyntheticNodes(IDatabase db, PipelineNames names, string[] nodes, string[] channels) =>
            (_db, _names, _nodes, _channels) = (db, names, nodes, channels);

        public static async Task<SyntheticNodes> RegisterAsync(IDatabase db, PipelineNames names, string[] nodes, string[] channels)
        {
            var registration = new SyntheticNodes(db, names, nodes, channels);
            await registration.RemoveRoutesAsync();
            await registration.HeartbeatAsync();
            var batch = db.CreateBatch();
            var writes = new List<Task>();
            foreach (var node in nodes)
            {
                foreach (var channel in channels)
                {
                    writes.Add(batch.SetAddAsync(names.RouteKey(channel), node));
                }

                writes.Add(batch.SetAddAsync(names.NodeRoutesKey(node), [.. channels.Select(c => (RedisValue)c)]));
            }

            batch.Execute();
            await Task.WhenAll(writes);
            registration._heartbeats = registration.HeartbeatLoopAsync();
            return registration;
        }

        /// <summary>Deletes what the fanout stored for the run's channels (positions, index, recent window).</summary>
        public async Task ForgetChannelsAsync()
        {
            var batch = _db.CreateBatch();
            var deletes = _channels.Select(c => batch.KeyDeleteAsync(
                [_names.ChannelStateKey(c), _names.ChannelIndexKey(c), _names.ChannelRecentKey(c)])).ToArray();
            batch.Execute();
            await Task.WhenAll(deletes);
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _heartbeats;
            var batch = _db.CreateBatch();
            var writes = new List<Task>();
            foreach (var node in _nodes)
            {
                writes.Add(batch.KeyDeleteAsync(_names.NodeAliveKey(node)));
                writes.Add(batch.SortedSetRemoveAsync(_names.NodesKey, node));
                writes.Add(batch.KeyDeleteAsync(_names.NodeStatsKey(node)));
            }

            batch.Execute();
            await Task.WhenAll(writes);
            await RemoveRoutesAsync();
            _stop.Dispose();
        }

        private async Task RemoveRoutesAsync()
        {
            foreach (var node in _nodes)
            {
                var channels = await _db.SetMembersAsync(_names.NodeRoutesKey(node));
                var batch = _db.CreateBatch();
                var removals = channels.Select(c => batch.SetRemoveAsync(_names.RouteKey((string)c!), node)).ToList();
                removals.Add(batch.KeyDeleteAsync(_names.NodeRoutesKey(node)));
                batch.Execute();
                await Task.WhenAll(removals);
            }
        }

        private async Task HeartbeatAsync()
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var batch = _db.CreateBatch();
            var writes = new List<Task>(_nodes.Length * 4);
            foreach (var node in _nodes)
            {
                var stats = _names.NodeStatsKey(node);
                writes.Add(batch.StringSetAndGetAsync(_names.NodeAliveKey(node), now, LivenessTtl));
                writes.Add(batch.SortedSetAddAsync(_names.NodesKey, node, now));
                writes.Add(batch.HashSetAsync(stats, [new HashEntry("connections", 0), new HashEntry("heartbeat", now)]));
                writes.Add(batch.KeyExpireAsync(stats, LivenessTtl * 3));
            }

            batch.Execute();
            await Task.WhenAll(writes);
        }

        private async Task HeartbeatLoopAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(HeartbeatInterval, _stop.Token);
                    await HeartbeatAsync();
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (Exception e) when (e is RedisException or TimeoutException)
                {
                    Console.Error.WriteLine($"W5: heartbeat of the synthetic nodes failed: {e.Message}");
                }
            }
        }
    }
}
