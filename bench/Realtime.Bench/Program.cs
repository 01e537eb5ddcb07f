using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Net.Client;
using HdrHistogram;
using Realtime.Bench;
using Realtime.Contracts.V1;
using Realtime.Hosting;

// Realtime Pipeline load generator. Loopback only; every run is bounded by its parameters and a
// deadline, and stops by itself. Runs against the stack `./realtime.sh up` starts (fixed ports).
//
//   dotnet Realtime.Bench.dll --workload W2|W6 [--quick] --key-file .run/dev-signing-key --out bench/results/<date>
var options = Args.Parse(args);
if (options.Get("report") is { } reportDir)
{
    await BenchReport.WriteAsync(reportDir, options.Get("doc") ?? Path.Combine("docs", "benchmarks.md"));
    return 0;
}

var quick = options.Flag("quick");
var workload = options.Get("workload") ?? "W2";
var key = File.ReadAllText(options.Get("key-file") ?? ".run/dev-signing-key").Trim();
var outDir = options.Get("out") ?? Path.Combine("bench", "results", DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
Directory.CreateDirectory(outDir);
// One subject per subscriber: the per-user connection cap applies to benchmarks too.
string TokenFor(string subject) => DevTokens.Mint(key, subject, ["*"], TimeSpan.FromHours(2), "realtime-dev", "realtime");
var token = TokenFor("bench-publisher");
using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(quick ? 3 : 20));

var result = workload switch
{
    "W2" => await Workloads.BroadcastAsync(
        token,
        TokenFor,
        int.Parse(options.Get("subscribers") ?? (quick ? "200" : "5000"), CultureInfo.InvariantCulture),
        int.Parse(options.Get("rate") ?? (quick ? "20" : "10"), CultureInfo.InvariantCulture),
        TimeSpan.FromSeconds(int.Parse(options.Get("seconds") ?? (quick ? "10" : "30"), CultureInfo.InvariantCulture)),
        deadline.Token),
    "W6" => await Workloads.ReplayAsync(token, quick ? 2_000 : 10_000, deadline.Token),
    _ => throw new ArgumentException($"unknown workload {workload} (W2, W6)"),
};
result["quick"] = quick;
var variant = options.Get("rate") is { } rate ? $"-{options.Get("subscribers") ?? "default"}x{rate}" : string.Empty;
var path = Path.Combine(outDir, $"{workload}{variant}{(quick ? "-quick" : string.Empty)}.json");
await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
Console.WriteLine(result.ToJsonString());
Console.WriteLine($"written {path}");
// Success means the run completed and delivered everything; speed is reported, never asserted.
return (long?)result["lost"] is 0 or null ? 0 : 1;

namespace Realtime.Bench
{
    internal static class Workloads
    {
        private static readonly Uri[] Gateways = [new("ws://127.0.0.1:8080/ws"), new("ws://127.0.0.1:8081/ws")];

        /// <summary>W2: one channel, many subscribers across both gateways, a steady publish rate through gRPC.</summary>
        public static async Task<JsonObject> BroadcastAsync(string token, Func<string, string> tokenFor, int subscribers, int ratePerSecond, TimeSpan duration, CancellationToken cancellationToken)
        {
            var channel = $"room:bench-{Guid.NewGuid():N}";
            var histogram = new LongConcurrentHistogram(1, TimeSpan.FromSeconds(60).Ticks / 10, 3);
            var received = new long[subscribers];
            var clients = new List<Subscriber>(subscribers);
            var connectClock = Stopwatch.StartNew();
            for (var i = 0; i < subscribers; i++)
            {
                // Source addresses across 127.0.0.2-127.0.0.254: the ephemeral port range is per source address.
                var source = IPAddress.Parse($"127.0.0.{2 + (i % 253)}");
                var index = i;
                clients.Add(await Subscriber.ConnectAsync(Gateways[i % 2], tokenFor($"bench-{i}"), source, channel, micros =>
                {
                    histogram.RecordValue(Math.Max(1, micros * 10));
                    Interlocked.Increment(ref received[index]);
                }, cancellationToken));
            }

            var connectSeconds = connectClock.Elapsed.TotalSeconds;
            var before = Snapshot();
            var generatorBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var wall = Stopwatch.StartNew();
            using var grpc = GrpcChannel.ForAddress("http://127.0.0.1:9080");
            var publisher = new Publisher.PublisherClient(grpc);
            var auth = new Grpc.Core.Metadata { { "authorization", $"Bearer {token}" } };
            var total = (int)(ratePerSecond * duration.TotalSeconds);
            var interval = TimeSpan.FromSeconds(1.0 / ratePerSecond);
            var started = Stopwatch.GetTimestamp();
            for (var n = 0; n < total; n++)
            {
                var due = TimeSpan.FromTicks(interval.Ticks * n);
                var wait = due - Stopwatch.GetElapsedTime(started);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }

                var payload = $"{{\"t\":{NowMicros()},\"n\":{n}}}";
                await publisher.PublishAsync(new PublishRequest { Channel = channel, EventType = "bench", Payload = ByteString.CopyFromUtf8(payload) }, auth, cancellationToken: cancellationToken);
            }

            var expected = (long)total * subscribers;
            var settle = Stopwatch.StartNew();
            while (received.Sum() < expected && settle.Elapsed < TimeSpan.FromSeconds(15))
            {
                await Task.Delay(50, cancellationToken);
            }

            var elapsed = wall.Elapsed.TotalSeconds;
            var generatorCpu = (Process.GetCurrentProcess().TotalProcessorTime - generatorBefore).TotalSeconds;
            var after = Snapshot();
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }

            var delivered = received.Sum();
            return Report("W2", new JsonObject
            {
                ["subscribers"] = subscribers,
                ["eventsPerSecond"] = ratePerSecond,
                ["seconds"] = duration.TotalSeconds,
                ["connectSeconds"] = Math.Round(connectSeconds, 2),
                ["connectRatePerSecond"] = Math.Round(subscribers / connectSeconds, 0),
            }, expected, delivered, histogram, before, after, generatorCpu, elapsed);
        }

        /// <summary>W6: a client that missed N events reconnects and catches up from its position.</summary>
        public static async Task<JsonObject> ReplayAsync(string token, int events, CancellationToken cancellationToken)
        {
            var channel = $"room:bench-{Guid.NewGuid():N}";
            var position = await HeadAsync(token, channel, cancellationToken);
            using var grpc = GrpcChannel.ForAddress("http://127.0.0.1:9080");
            var publisher = new Publisher.PublisherClient(grpc);
            var auth = new Grpc.Core.Metadata { { "authorization", $"Bearer {token}" } };
            for (var start = 0; start < events; start += 500)
            {
                var batch = new PublishBatchRequest();
                for (var n = start; n < Math.Min(events, start + 500); n++)
                {
                    batch.Events.Add(new PublishRequest { Channel = channel, EventType = "bench", Payload = ByteString.CopyFromUtf8($"{{\"t\":0,\"n\":{n}}}") });
                }

                await publisher.PublishBatchAsync(batch, auth, cancellationToken: cancellationToken);
            }

            // Wait until the channel's head says everything was sequenced.
            while ((await HeadAsync(token, channel, cancellationToken)).Seq < position.Seq + (ulong)events)
            {
                await Task.Delay(100, cancellationToken);
            }

            var before = Snapshot();
            var received = 0L;
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var clock = Stopwatch.StartNew();
            await using var client = await Subscriber.ConnectAsync(Gateways[1], token, IPAddress.Loopback, channel, _ =>
            {
                if (Interlocked.Increment(ref received) == events)
                {
                    done.TrySetResult();
                }
            }, cancellationToken, since: position);
            await done.Task.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
            var caughtUp = clock.Elapsed;
            var after = Snapshot();
            var histogram = new LongConcurrentHistogram(1, 10_000_000, 3);
            histogram.RecordValue(Math.Max(1, (long)(caughtUp.TotalMilliseconds * 10_000)));
            var report = Report("W6", new JsonObject { ["missedEvents"] = events }, events, received, null, before, after, 0, caughtUp.TotalSeconds);
            report["catchUpMilliseconds"] = Math.Round(caughtUp.TotalMilliseconds, 1);
            return report;
        }

        private static async Task<(string Epoch, ulong Seq)> HeadAsync(string token, string channel, CancellationToken cancellationToken)
        {
            using var http = new HttpClient();
            http.DefaultRequestHeaders.Authorization = new("Bearer", token);
            var page = JsonNode.Parse(await http.GetStringAsync(new Uri($"http://127.0.0.1:8080/v1/channels/{channel}/events?limit=1&since=0"), cancellationToken))!;
            return ((string)page["epoch"]!, (ulong)page["seq"]!);
        }

        private static List<ProcessSample> Snapshot() =>
            [.. ProcessSample.FindStack().Select(p => ProcessSample.Read(p.Name, p.Pid)).OfType<ProcessSample>()];

        private static JsonObject Report(
            string workload,
            JsonObject parameters,
            long expected,
            long delivered,
            LongConcurrentHistogram? latency,
            List<ProcessSample> before,
            List<ProcessSample> after,
            double generatorCpuSeconds,
            double seconds)
        {
            var processes = new JsonArray();
            double stackCpu = 0, gatewaysCpu = 0;
            foreach (var end in after)
            {
                var start = before.FirstOrDefault(b => b.Pid == end.Pid);
                var cpu = end.CpuSeconds - (start?.CpuSeconds ?? 0);
                stackCpu += cpu;
                if (end.Name.StartsWith("gateway", StringComparison.Ordinal))
                {
                    gatewaysCpu += cpu;
                }

                processes.Add(new JsonObject { ["name"] = end.Name, ["cpuSeconds"] = Math.Round(cpu, 3), ["peakRssMiB"] = Math.Round(end.PeakRssKiB / 1024.0, 1) });
            }

            var generatorShare = seconds > 0 ? generatorCpuSeconds / seconds : 0;
            var report = new JsonObject
            {
                ["workload"] = workload,
                ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
                ["parameters"] = parameters,
                ["expected"] = expected,
                ["delivered"] = delivered,
                ["lost"] = Math.Max(0, expected - delivered),
                ["processes"] = processes,
                ["cpuSecondsPerMillionDeliveries"] = delivered > 0 ? Math.Round(stackCpu / delivered * 1_000_000, 2) : null,
                ["gatewayOnlyCpuSecondsPerMillionDeliveries"] = delivered > 0 ? Math.Round(gatewaysCpu / delivered * 1_000_000, 2) : null,
                ["generatorCpuShare"] = Math.Round(generatorShare, 3),
                // A generator that needs most of its core measures itself, not the system.
                ["valid"] = generatorShare <= 0.7,
            };
            if (latency is not null && latency.TotalCount > 0)
            {
                // Recorded in tenths of a microsecond.
                double Ms(double percentile) => Math.Round(latency.GetValueAtPercentile(percentile) / 10_000.0, 3);
                report["latencyMs"] = new JsonObject { ["p50"] = Ms(50), ["p99"] = Ms(99), ["p99.9"] = Ms(99.9), ["max"] = Math.Round(latency.GetMaxValue() / 10_000.0, 3) };
            }

            return report;
        }

        public static long NowMicros() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;
    }

    /// <summary>One WebSocket subscriber bound to a source address, reading frames and reporting each event's latency.</summary>
    internal sealed class Subscriber : IAsyncDisposable
    {
        private readonly ClientWebSocket _socket;
        private readonly CancellationTokenSource _stop = new();
        private Task _reader = Task.CompletedTask;

        private Subscriber(ClientWebSocket socket) => _socket = socket;

        public static async Task<Subscriber> ConnectAsync(Uri gateway, string token, IPAddress source, string channel, Action<long> onEvent, CancellationToken cancellationToken, (string Epoch, ulong Seq)? since = null)
        {
            var handler = new SocketsHttpHandler
            {
                ConnectCallback = async (context, ct) =>
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    socket.Bind(new IPEndPoint(source, 0));
                    await socket.ConnectAsync(context.DnsEndPoint, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                },
            };
            var client = new ClientWebSocket();
            client.Options.SetRequestHeader("Authorization", $"Bearer {token}");
            using var invoker = new HttpMessageInvoker(handler);
            await client.ConnectAsync(gateway, invoker, cancellationToken);
            var subscriber = new Subscriber(client);
            var ok = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            subscriber._reader = subscriber.ReadAsync(onEvent, ok);
            var frame = new JsonObject { ["type"] = "subscribe", ["id"] = "s", ["channel"] = channel };
            if (since is { } position)
            {
                frame["since"] = new JsonObject { ["epoch"] = position.Epoch, ["seq"] = position.Seq };
            }

            await client.SendAsync(Encoding.UTF8.GetBytes(frame.ToJsonString()), WebSocketMessageType.Text, true, cancellationToken);
            if (since is null)
            {
                await ok.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            return subscriber;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _socket.Abort();
            await _reader.ContinueWith(_ => { }, TaskScheduler.Default);
            _socket.Dispose();
            _stop.Dispose();
        }

        private async Task ReadAsync(Action<long> onEvent, TaskCompletionSource ok)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    var count = 0;
                    ValueWebSocketReceiveResult result;
                    do
                    {
                        result = await _socket.ReceiveAsync(buffer.AsMemory(count), _stop.Token);
                        count += result.Count;
                    }
                    while (!result.EndOfMessage && count < buffer.Length);

                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        return;
                    }

                    var (type, t) = Scan(buffer.AsSpan(0, count));
                    if (type == "event")
                    {
                        onEvent(Workloads.NowMicros() - t);
                    }
                    else if (type == "ok")
                    {
                        ok.TrySetResult();
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException)
            {
            }
        }

        /// <summary>
        /// The frame's type and, for events, the publish time carried in the data (<c>"t"</c>, Unix
        /// microseconds). A byte scan, not a JSON parse: the generator must stay far cheaper than
        /// the system it measures, and the gateway writes <c>type</c> first.
        /// </summary>
        private static (string? Type, long T) Scan(ReadOnlySpan<byte> frame)
        {
            if (frame.StartsWith("{\"type\":\"event\""u8))
            {
                var at = frame.IndexOf("\"t\":"u8);
                long t = 0;
                for (var k = at + 4; at >= 0 && k < frame.Length && frame[k] is >= (byte)'0' and <= (byte)'9'; k++)
                {
                    t = (t * 10) + (frame[k] - '0');
                }

                return ("event", t);
            }

            return (frame.StartsWith("{\"type\":\"ok\""u8) ? "ok" : null, 0);
        }
    }

    internal sealed class Args
    {
        private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

        public static Args Parse(string[] args)
        {
            var parsed = new Args();
            for (var i = 0; i < args.Length; i++)
            {
                if (!args[i].StartsWith("--", StringComparison.Ordinal))
                {
                    throw new ArgumentException($"unexpected argument {args[i]}");
                }

                var name = args[i][2..];
                parsed._values[name] = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "true";
            }

            return parsed;
        }

        public string? Get(string name) => _values.GetValueOrDefault(name);

        public bool Flag(string name) => _values.ContainsKey(name);
    }
}
