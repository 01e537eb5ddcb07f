using Google.Protobuf;
using Realtime.Contracts.V1;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// Failure drills of the delivery guarantees: components die mid-stream and every client still
/// ends with every event, once, in order, with contiguous sequences.
/// </summary>
public sealed class FailureDrillTests(TestInfrastructure infrastructure, ITestOutputHelper output)
{
    private static readonly Dictionary<string, string?> FastFailover = new()
    {
        // A killed fanout's partitions move after the session timeout; the shortest real brokers allow.
        ["Kafka__Properties__session.timeout.ms"] = "6000",
    };

    [Fact]
    public async Task Fanout_workers_killed_without_warning_five_times_lose_nothing()
    {
        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "drill-fanout", gateways: 2, fanouts: 2, settings: FastFailover);
        const int Channels = 200, Events = 20_000, Batch = 100, Subscribers = 20;
        var channels = Enumerable.Range(0, Channels).Select(i => $"room:drill-{i}").ToArray();
        var audit = new DeliveryAudit();
        var subscribers = new List<ResumingSubscriber>();
        for (var s = 0; s < Subscribers; s++)
        {
            subscribers.Add(await ResumingSubscriber.StartAsync(pipeline, s % 2, $"sub{s}", [.. channels.Where((_, i) => i % Subscribers == s)], audit));
        }

        var publisher = pipeline.PublisherClient(0);
        var auth = pipeline.ServiceAuth("room:*");
        var kills = 0;
        var live = new List<ManagedProcess>(pipeline.Fanouts);
        for (var start = 0; start < Events; start += Batch)
        {
            var request = new PublishBatchRequest();
            for (var i = start; i < start + Batch; i++)
            {
                var channel = channels[i % Channels];
                request.Events.Add(new PublishRequest { Channel = channel, EventType = "n", Payload = ByteString.CopyFromUtf8(i.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
                audit.Published(channel, i);
            }

            await publisher.PublishBatchAsync(request, auth, deadline: DateTime.UtcNow.AddSeconds(60));

            // Kill a worker at five points of the stream and start a replacement.
            if (kills < 5 && start > 0 && start % (Events / 6) < Batch)
            {
                var victim = live[kills % live.Count];
                victim.Kill();
                live.Remove(victim);
                live.Add(pipeline.StartFanout(10 + kills));
                kills++;
                output.WriteLine($"killed {victim} after {start + Batch} events");
            }
        }

        await WaitForAllAsync(audit, subscribers, TimeSpan.FromMinutes(3));
        var report = audit.Report(subscribers.SelectMany(s => s.Channels.Select(c => (s.Name, c))));
        output.WriteLine($"kills={kills} {report}");
        Assert.Equal(5, kills);
        AssertClean(report, Events);
        foreach (var subscriber in subscribers)
        {
            await subscriber.DisposeAsync();
        }
    }

    [Fact]
    public async Task Clients_of_a_gateway_killed_mid_stream_resume_on_the_other_and_get_everything()
    {
        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "drill-gateway", gateways: 2, fanouts: 1);
        var channels = Enumerable.Range(0, 20).Select(i => $"room:gw-{i}").ToArray();
        var audit = new DeliveryAudit();
        var subscribers = new List<ResumingSubscriber>();
        for (var s = 0; s < 10; s++)
        {
            subscribers.Add(await ResumingSubscriber.StartAsync(pipeline, 0, $"sub{s}", [.. channels.Where((_, i) => i % 10 == s)], audit));
        }

        var publisher = pipeline.PublisherClient(1);
        var auth = pipeline.ServiceAuth("room:*");
        const int Events = 4_000;
        for (var i = 0; i < Events; i++)
        {
            var channel = channels[i % channels.Length];
            await publisher.PublishAsync(new PublishRequest { Channel = channel, EventType = "n", Payload = ByteString.CopyFromUtf8(i.ToString(System.Globalization.CultureInfo.InvariantCulture)) }, auth, deadline: DateTime.UtcNow.AddSeconds(30));
            audit.Published(channel, i);
            if (i == Events / 2)
            {
                pipeline.Gateways[0].Process.Kill();
                output.WriteLine($"killed gw-0 after {i + 1} events");
                foreach (var subscriber in subscribers)
                {
                    await subscriber.Disconnected.WaitAsync(TimeSpan.FromSeconds(30));
                    await subscriber.ConnectAsync(1);
                }
            }
        }

        await WaitForAllAsync(audit, subscribers, TimeSpan.FromMinutes(2));
        var report = audit.Report(subscribers.SelectMany(s => s.Channels.Select(c => (s.Name, c))));
        output.WriteLine(report.ToString());
        AssertClean(report, Events);
        Assert.All(subscribers, s => Assert.Equal(0, s.Resyncs));
        foreach (var subscriber in subscribers)
        {
            await subscriber.DisposeAsync();
        }
    }

    [Fact]
    public async Task Two_thousand_clients_that_drop_at_once_resume_with_since_while_publishing_goes_on()
    {
        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "drill-storm", gateways: 2, fanouts: 1);
        var channels = Enumerable.Range(0, 50).Select(i => $"room:storm-{i}").ToArray();
        var audit = new DeliveryAudit();
        var subscribers = new List<ResumingSubscriber>();
        for (var s = 0; s < 2_000; s++)
        {
            subscribers.Add(await ResumingSubscriber.StartAsync(pipeline, s % 2, $"c{s}", [channels[s % channels.Length]], audit));
        }

        var publisher = pipeline.PublisherClient(0);
        var auth = pipeline.ServiceAuth("room:*");
        var published = 0;
        using var stop = new CancellationTokenSource();
        var flow = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var request = new PublishBatchRequest();
                foreach (var channel in channels)
                {
                    request.Events.Add(new PublishRequest { Channel = channel, EventType = "n", Payload = ByteString.CopyFromUtf8(published.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
                    audit.Published(channel, published++);
                }

                await publisher.PublishBatchAsync(request, auth, deadline: DateTime.UtcNow.AddSeconds(30));
                // About 500 events/s over 50 channels, 40 subscribers each: 20,000 deliveries/s.
                await Task.Delay(100, CancellationToken.None);
            }
        });

        await Task.WhenAll(subscribers.Select(s => s.DropAsync()));
        output.WriteLine($"dropped {subscribers.Count} clients");
        // Each resumes on the other node, while the flow goes on.
        await Parallel.ForEachAsync(subscribers, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (s, _) =>
            await s.ConnectAsync(int.Parse(s.Name[1..], System.Globalization.CultureInfo.InvariantCulture) % 2 == 0 ? 1 : 0));

        await stop.CancelAsync();
        await flow.WaitAsync(TimeSpan.FromSeconds(30));
        await WaitForAllAsync(audit, subscribers, TimeSpan.FromMinutes(2));
        var report = audit.Report(subscribers.SelectMany(s => s.Channels.Select(c => (s.Name, c))));
        output.WriteLine(report.ToString());
        AssertClean(report, report.Published);
        Assert.All(subscribers, s => Assert.Equal(0, s.Resyncs));
        foreach (var subscriber in subscribers)
        {
            await subscriber.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_broker_outage_of_five_seconds_and_moving_partition_leaders_lose_nothing()
    {
        Assert.SkipUnless(infrastructure.Kafka.Embedded is not null, "fault injection needs the embedded broker");
        var cluster = infrastructure.Kafka.Embedded!;
        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "drill-broker", gateways: 2, fanouts: 1);
        var channels = Enumerable.Range(0, 20).Select(i => $"room:broker-{i}").ToArray();
        var audit = new DeliveryAudit();
        var subscribers = new List<ResumingSubscriber>();
        for (var s = 0; s < 4; s++)
        {
            subscribers.Add(await ResumingSubscriber.StartAsync(pipeline, s % 2, $"sub{s}", [.. channels.Where((_, i) => i % 4 == s)], audit));
        }

        var publisher = pipeline.PublisherClient(0);
        var auth = pipeline.ServiceAuth("room:*");
        const int Batches = 60;
        var outage = Task.CompletedTask;
        for (var b = 0; b < Batches; b++)
        {
            var request = new PublishBatchRequest();
            for (var i = b * channels.Length; i < (b + 1) * channels.Length; i++)
            {
                request.Events.Add(new PublishRequest { Channel = channels[i % channels.Length], EventType = "n", Payload = ByteString.CopyFromUtf8(i.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
                audit.Published(channels[i % channels.Length], i);
            }

            await publisher.PublishBatchAsync(request, auth, deadline: DateTime.UtcNow.AddSeconds(60));
            if (b == Batches / 3)
            {
                // Every broker goes away for five seconds while publishing goes on (and waits).
                outage = Task.Run(async () =>
                {
                    for (var id = 1; id <= cluster.BrokerCount; id++)
                    {
                        cluster.SetBrokerDown(id);
                    }

                    await Task.Delay(TimeSpan.FromSeconds(5));
                    for (var id = 1; id <= cluster.BrokerCount; id++)
                    {
                        cluster.SetBrokerUp(id);
                    }
                });
                output.WriteLine("brokers down for 5 s");
            }

            if (b == 2 * Batches / 3)
            {
                // Leadership of every ingress and node-topic partition moves to another broker.
                foreach (var topic in new[] { pipeline.Names.IngressTopic, pipeline.Names.NodeTopic("gw-0"), pipeline.Names.NodeTopic("gw-1") })
                {
                    var partitions = topic == pipeline.Names.IngressTopic ? LocalPipeline.IngressPartitions : 4;
                    for (var p = 0; p < partitions; p++)
                    {
                        cluster.SetPartitionLeader(topic, p, 1 + ((p + 1) % cluster.BrokerCount));
                    }
                }

                output.WriteLine("partition leaders moved");
            }
        }

        await outage;
        await WaitForAllAsync(audit, subscribers, TimeSpan.FromMinutes(2));
        var report = audit.Report(subscribers.SelectMany(s => s.Channels.Select(c => (s.Name, c))));
        output.WriteLine(report.ToString());
        AssertClean(report, Batches * channels.Length);
        foreach (var subscriber in subscribers)
        {
            await subscriber.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_redis_restart_that_loses_all_data_mid_stream_loses_nothing()
    {
        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "drill-redis", gateways: 2, fanouts: 1);
        var channels = Enumerable.Range(0, 20).Select(i => $"room:redis-{i}").ToArray();
        var audit = new DeliveryAudit();
        var subscribers = new List<ResumingSubscriber>();
        for (var s = 0; s < 4; s++)
        {
            subscribers.Add(await ResumingSubscriber.StartAsync(pipeline, s % 2, $"sub{s}", [.. channels.Where((_, i) => i % 4 == s)], audit));
        }

        var publisher = pipeline.PublisherClient(0);
        var auth = pipeline.ServiceAuth("room:*");
        const int Batches = 60;
        for (var b = 0; b < Batches; b++)
        {
            var request = new PublishBatchRequest();
            for (var i = b * channels.Length; i < (b + 1) * channels.Length; i++)
            {
                request.Events.Add(new PublishRequest { Channel = channels[i % channels.Length], EventType = "n", Payload = ByteString.CopyFromUtf8(i.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
                audit.Published(channels[i % channels.Length], i);
            }

            await publisher.PublishBatchAsync(request, auth, deadline: DateTime.UtcNow.AddSeconds(60));
            if (b == Batches / 2)
            {
                await infrastructure.Redis.RestartAsync();
                output.WriteLine("redis-server restarted empty");
            }

            await Task.Delay(50, CancellationToken.None);
        }

        await WaitForAllAsync(audit, subscribers, TimeSpan.FromMinutes(2));
        var report = audit.Report(subscribers.SelectMany(s => s.Channels.Select(c => (s.Name, c))));
        output.WriteLine(report.ToString());
        AssertClean(report, Batches * channels.Length);
        foreach (var subscriber in subscribers)
        {
            await subscriber.DisposeAsync();
        }
    }

    private static async Task WaitForAllAsync(DeliveryAudit audit, List<ResumingSubscriber> subscribers, TimeSpan timeout)
    {
        await PipelineTests.WaitUntilAsync(
            () => Task.FromResult(subscribers.All(s => s.Channels.All(c => audit.Missing(s.Name, c) <= 0))),
            timeout);
    }

    private static void AssertClean(AuditReport report, long expectedPublished)
    {
        Assert.True(report.Published >= expectedPublished);
        Assert.Equal(0, report.Lost);
        Assert.Equal(0, report.Duplicates);
        Assert.Equal(0, report.OutOfOrder);
        Assert.Equal(0, report.SeqHoles);
    }
}
