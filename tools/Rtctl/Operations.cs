using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Realtime.Contracts;
using Realtime.Hosting;
using Realtime.Hosting.Telemetry;
using StackExchange.Redis;

namespace Realtime.Ctl;

/// <summary>
/// The operator's view of a running pipeline: lag, nodes, routes, a channel's tail, and clean-up
/// of delivery topics. Connection settings come from the options, else from the environment the
/// processes use (<c>Kafka__BootstrapServers</c>, <c>Redis__Configuration</c>,
/// <c>Pipeline__Namespace</c>; <c>./realtime.sh rtctl</c> sets them for the stack <c>up</c> started).
/// </summary>
internal static class Operations
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static int Lag(Arguments options)
    {
        var kafka = KafkaOf(options);
        var names = NamesOf(options);
        var rows = new List<PartitionLag>();
        using (var probe = new ConsumerLagProbe(kafka, names.FanoutGroupId, "rtctl-lag"))
        {
            rows.AddRange(probe.Measure(names.IngressTopic, TimeSpan.FromSeconds(10)));
        }

        foreach (var node in NodeTopics(kafka, names))
        {
            using var probe = new ConsumerLagProbe(kafka, names.NodeGroupId(node), "rtctl-lag");
            rows.AddRange(probe.Measure(names.NodeTopic(node), TimeSpan.FromSeconds(10)));
        }

        if (options.Flag("json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(rows.Select(r => new { r.Group, r.Topic, r.Partition, r.Committed, r.High, Lag = r.Events, r.AgeSeconds }), Json));
            return 0;
        }

        Table(
            ["GROUP", "TOPIC", "PARTITION", "COMMITTED", "HIGH", "LAG", "AGE"],
            rows.Select(r => new[] { r.Group, r.Topic, Num(r.Partition), Num(r.Committed), Num(r.High), Num(r.Events), r.AgeSeconds is { } age ? $"{age:F1}s" : "?" }));
        return 0;
    }

    public static async Task<int> NodesAsync(Arguments options)
    {
        var names = NamesOf(options);
        using var redis = await ConnectionMultiplexer.ConnectAsync(RedisOf(options));
        var db = redis.GetDatabase();
        var rows = new List<(string Node, bool Alive, long Connections, long Routes, DateTimeOffset LastHeartbeat)>();
        foreach (var entry in await db.SortedSetRangeByRankWithScoresAsync(names.NodesKey))
        {
            var node = (string)entry.Element!;
            var alive = await db.KeyExistsAsync(names.NodeAliveKey(node));
            var connections = (long?)await db.HashGetAsync(names.NodeStatsKey(node), "connections") ?? 0;
            var routes = await db.SetLengthAsync(names.NodeRoutesKey(node));
            rows.Add((node, alive, connections, routes, DateTimeOffset.FromUnixTimeMilliseconds((long)entry.Score)));
        }

        if (options.Flag("json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(rows.Select(r => new { r.Node, r.Alive, r.Connections, r.Routes, r.LastHeartbeat }), Json));
            return 0;
        }

        var now = DateTimeOffset.UtcNow;
        Table(
            ["NODE", "ALIVE", "CONNECTIONS", "ROUTES", "LAST HEARTBEAT"],
            rows.Select(r => new[] { r.Node, r.Alive ? "yes" : "no", Num(r.Connections), Num(r.Routes), $"{(now - r.LastHeartbeat).TotalSeconds:F0}s ago" }));
        return 0;
    }

    public static async Task<int> RoutesAsync(Arguments options)
    {
        if (options.Positional.Count != 1)
        {
            throw new ArgumentException("routes takes <channel>.");
        }

        var channel = options.Positional[0];
        var names = NamesOf(options);
        using var redis = await ConnectionMultiplexer.ConnectAsync(RedisOf(options));
        var db = redis.GetDatabase();
        var rows = new List<(string Node, bool Alive)>();
        foreach (var member in await db.SetMembersAsync(names.RouteKey(channel)))
        {
            var node = (string)member!;
            rows.Add((node, await db.KeyExistsAsync(names.NodeAliveKey(node))));
        }

        var state = await db.HashGetAsync(names.ChannelStateKey(channel), ["epoch", "seq"]);
        if (options.Flag("json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(new { channel, epoch = (string?)state[0], seq = (long?)state[1] ?? 0, nodes = rows.Select(r => new { r.Node, r.Alive }) }, Json));
            return 0;
        }

        Console.WriteLine($"channel {channel}: epoch {(string?)state[0] ?? "-"}, seq {(long?)state[1] ?? 0}");
        Table(["NODE", "ALIVE"], rows.Select(r => new[] { r.Node, r.Alive ? "yes" : "no (the fanout skips it)" }));
        return 0;
    }

    /// <summary>Subscribes to a channel over WebSocket (resuming from <c>--since</c>) and prints its events as they come.</summary>
    public static async Task<int> TailAsync(Arguments options, string token)
    {
        if (options.Positional.Count != 1)
        {
            throw new ArgumentException("tail takes <channel>.");
        }

        var channel = options.Positional[0];
        var limit = int.Parse(options.Optional("count") ?? "0", CultureInfo.InvariantCulture);
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", $"Bearer {token}");
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        if (options.Optional("timeout") is { } timeout)
        {
            stop.CancelAfter(Program.ParseDuration(timeout));
        }

        await socket.ConnectAsync(new Uri(options.Optional("gateway") ?? "ws://127.0.0.1:8080/ws"), stop.Token);
        var subscribe = new Dictionary<string, object?> { ["type"] = "subscribe", ["id"] = "tail", ["channel"] = channel };
        if (options.Optional("since") is { } since)
        {
            // --since <epoch>:<seq>
            var parts = since.Split(':', 2);
            subscribe["since"] = new { epoch = parts[0], seq = ulong.Parse(parts[1], CultureInfo.InvariantCulture) };
        }

        await socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(subscribe), WebSocketMessageType.Text, true, stop.Token);
        var buffer = new byte[256 * 1024];
        var printed = 0;
        try
        {
            while (limit == 0 || printed < limit)
            {
                var count = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    result = await socket.ReceiveAsync(buffer.AsMemory(count), stop.Token);
                    count += result.Count;
                }
                while (!result.EndOfMessage && count < buffer.Length);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }

                var text = Encoding.UTF8.GetString(buffer, 0, count);
                using var frame = JsonDocument.Parse(text);
                var type = frame.RootElement.GetProperty("type").GetString();
                if (type is "event" or "resync" or "error")
                {
                    Console.WriteLine(text);
                    printed += type == "event" ? 1 : 0;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Ctrl-C or --timeout.
        }

        return 0;
    }

    /// <summary>Deletes the delivery topics of nodes that have been gone longer than <c>--older-than</c> (a dry run without <c>--yes</c>).</summary>
    public static async Task<int> TopicsGcAsync(Arguments options)
    {
        var kafka = KafkaOf(options);
        var names = NamesOf(options);
        var threshold = Program.ParseDuration(options.Optional("older-than") ?? "1d");
        using var redis = await ConnectionMultiplexer.ConnectAsync(RedisOf(options));
        var db = redis.GetDatabase();
        var now = DateTimeOffset.UtcNow;
        var stale = new List<string>();
        foreach (var node in NodeTopics(kafka, names))
        {
            if (await db.KeyExistsAsync(names.NodeAliveKey(node)))
            {
                continue;
            }

            var last = await db.SortedSetScoreAsync(names.NodesKey, node);
            if (last is null || now - DateTimeOffset.FromUnixTimeMilliseconds((long)last.Value) > threshold)
            {
                stale.Add(node);
            }
        }

        foreach (var node in stale)
        {
            Console.WriteLine($"{(options.Flag("yes") ? "deleting" : "would delete")} {names.NodeTopic(node)} (node {node} gone longer than {threshold})");
        }

        if (!options.Flag("yes") || stale.Count == 0)
        {
            return 0;
        }

        using var admin = new AdminClientBuilder(KafkaClientSettings.Admin(kafka, "rtctl-gc")).Build();
        try
        {
            await admin.DeleteTopicsAsync([.. stale.Select(names.NodeTopic)]);
            foreach (var node in stale)
            {
                await db.SortedSetRemoveAsync(names.NodesKey, node);
            }

            return 0;
        }
        catch (DeleteTopicsException e)
        {
            await Console.Error.WriteLineAsync($"rtctl: some topics were not deleted: {string.Join("; ", e.Results.Where(r => r.Error.IsError).Select(r => $"{r.Topic}: {r.Error.Reason}"))} (the embedded development broker cannot delete topics)");
            return 1;
        }
    }

    private static List<string> NodeTopics(KafkaOptions kafka, PipelineNames names)
    {
        using var admin = new AdminClientBuilder(KafkaClientSettings.Admin(kafka, "rtctl")).Build();
        return [.. admin.GetMetadata(TimeSpan.FromSeconds(10)).Topics
            .Select(t => t.Topic)
            .Where(t => t.StartsWith(names.NodeTopicPrefix, StringComparison.Ordinal))
            .Select(t => t[names.NodeTopicPrefix.Length..])
            .Order(StringComparer.Ordinal)];
    }

    private static KafkaOptions KafkaOf(Arguments options) => new()
    {
        BootstrapServers = options.Optional("kafka") ?? Environment.GetEnvironmentVariable("Kafka__BootstrapServers") ?? "127.0.0.1:9092",
    };

    private static string RedisOf(Arguments options) =>
        options.Optional("redis") ?? Environment.GetEnvironmentVariable("Redis__Configuration") ?? "127.0.0.1:6379";

    private static PipelineNames NamesOf(Arguments options) =>
        new(options.Optional("namespace") ?? Environment.GetEnvironmentVariable("Pipeline__Namespace"));

    private static string Num(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static void Table(string[] header, IEnumerable<string[]> rows)
    {
        var all = rows.Prepend(header).ToList();
        var widths = header.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
        {
            Console.WriteLine(string.Join("  ", row.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd());
        }
    }
}
