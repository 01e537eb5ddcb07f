using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Net.Client;
using Realtime.Contracts.V1;

namespace Realtime.Bench.Targets;

/// <summary>
/// Our whole system as `./realtime.sh up` starts it: gateways gw-0 (8080/9080) and gw-1
/// (8081/9081), the fanout, the embedded Kafka host and redis-server. Subscribers use the JSON
/// WebSocket protocol; events are published through the gRPC Publisher API.
/// </summary>
internal sealed class RealtimeTarget : IBenchTarget
{
    public static readonly Uri[] Gateways = [new("ws://127.0.0.1:8080/ws"), new("ws://127.0.0.1:8081/ws")];

    private readonly Func<string, string> _tokenFor;
    private readonly GrpcChannel _grpc = GrpcChannel.ForAddress("http://127.0.0.1:9080");
    private readonly Publisher.PublisherClient _publisher;
    private readonly Grpc.Core.Metadata _auth;

    public RealtimeTarget(Func<string, string> tokenFor)
    {
        _tokenFor = tokenFor;
        _publisher = new Publisher.PublisherClient(_grpc);
        _auth = new Grpc.Core.Metadata { { "authorization", $"Bearer {tokenFor("bench-publisher")}" } };
    }

    public string Name => "realtime";

    public IReadOnlyList<(string Name, int Pid)> Processes() => ProcessSample.FindStack();

    public int Instances => Gateways.Length;

    public async Task<IBenchSubscriber> SubscribeAsync(int index, int instance, IPAddress source, string channel, Action<long, long> onEvent, CancellationToken cancellationToken) =>
        // One subject per subscriber: the per-user connection cap applies to benchmarks too.
        await RealtimeSubscriber.ConnectAsync(Gateways[instance], _tokenFor($"bench-{index}"), source, channel, onEvent, cancellationToken);

    public Task PublishAsync(string channel, long n, CancellationToken cancellationToken) =>
        _publisher.PublishAsync(
            new PublishRequest { Channel = channel, EventType = "bench", Payload = ByteString.CopyFromUtf8($"{{\"t\":{Clock.NowMicros()},\"n\":{n}}}") },
            _auth,
            cancellationToken: cancellationToken).ResponseAsync;

    public ValueTask DisposeAsync()
    {
        _grpc.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>One WebSocket subscriber bound to a source address, reading frames and reporting each event's latency.</summary>
internal sealed class RealtimeSubscriber : IBenchSubscriber
{
    private readonly ClientWebSocket _socket;
    private readonly CancellationTokenSource _stop = new();
    private Task _reader = Task.CompletedTask;

    private RealtimeSubscriber(ClientWebSocket socket) => _socket = socket;

    public static async Task<RealtimeSubscriber> ConnectAsync(Uri gateway, string token, IPAddress source, string channel, Action<long, long> onEvent, CancellationToken cancellationToken, (string Epoch, ulong Seq)? since = null)
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
        var subscriber = new RealtimeSubscriber(client);
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

    public void Abort() => throw new NotImplementedException("W4 needs it");

    public Task ReconnectAsync(CancellationToken cancellationToken) => throw new NotImplementedException("W4 needs it");

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Abort();
        await _reader.ContinueWith(_ => { }, TaskScheduler.Default);
        _socket.Dispose();
        _stop.Dispose();
    }

    private async Task ReadAsync(Action<long, long> onEvent, TaskCompletionSource ok)
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

                var (type, t, n) = Scan(buffer.AsSpan(0, count));
                if (type == "event")
                {
                    onEvent(Clock.NowMicros() - t, n);
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
    /// The frame's type and, for events, the publish time (<c>"t"</c>, Unix µs) and sequence
    /// (<c>"n"</c>) carried in the data. A byte scan, not a JSON parse: the generator must stay far
    /// cheaper than the system it measures, and the gateway writes <c>type</c> first.
    /// </summary>
    private static (string? Type, long T, long N) Scan(ReadOnlySpan<byte> frame)
    {
        if (frame.StartsWith("{\"type\":\"event\""u8))
        {
            return ("event", PayloadScan.Number(frame, "\"t\":"u8), PayloadScan.Number(frame, "\"n\":"u8));
        }

        return (frame.StartsWith("{\"type\":\"ok\""u8) ? "ok" : null, 0, 0);
    }
}
