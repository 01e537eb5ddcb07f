using System.Net;
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

/// <summary>
/// One WebSocket subscriber bound to a source address, reading frames and reporting each event's
/// latency. It keeps its channel's last position, so a reconnect resumes with <c>since</c>.
/// </summary>
internal sealed class RealtimeSubscriber : IBenchSubscriber
{
    private readonly Uri _gateway;
    private readonly KeyValuePair<string, string>[] _headers;
    private readonly IPAddress _source;
    private readonly string _channel;
    private readonly Action<long, long> _onEvent;
    private LoopbackWebSocket? _socket;
    private TaskCompletionSource _ok = new();
    private string? _epoch;
    private ulong _seq;

    private RealtimeSubscriber(Uri gateway, string token, IPAddress source, string channel, Action<long, long> onEvent)
    {
        (_gateway, _source, _channel, _onEvent) = (gateway, source, channel, onEvent);
        _headers = [new("Authorization", $"Bearer {token}")];
    }

    /// <summary>Connects and subscribes; with <paramref name="since"/> it completes once the subscribe is sent (the replay follows).</summary>
    public static async Task<RealtimeSubscriber> ConnectAsync(Uri gateway, string token, IPAddress source, string channel, Action<long, long> onEvent, CancellationToken cancellationToken, (string Epoch, ulong Seq)? since = null)
    {
        var subscriber = new RealtimeSubscriber(gateway, token, source, channel, onEvent);
        if (since is { } position)
        {
            (subscriber._epoch, subscriber._seq) = position;
        }

        await subscriber.ConnectAsync(waitForOk: since is null, cancellationToken);
        return subscriber;
    }

    public void Abort() => _socket?.Abort();

    public async Task ReconnectAsync(CancellationToken cancellationToken)
    {
        if (_socket is { } old)
        {
            _socket = null;
            await old.DisposeAsync();
        }

        await ConnectAsync(waitForOk: true, cancellationToken);
    }

    public ValueTask DisposeAsync() => _socket?.DisposeAsync() ?? ValueTask.CompletedTask;

    private async Task ConnectAsync(bool waitForOk, CancellationToken cancellationToken)
    {
        var socket = await LoopbackWebSocket.ConnectAsync(_gateway, _source, _headers, cancellationToken);
        _socket = socket;
        _ok = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        socket.Start(OnFrame);
        var frame = new JsonObject { ["type"] = "subscribe", ["id"] = "s", ["channel"] = _channel };
        if (_epoch is not null)
        {
            frame["since"] = new JsonObject { ["epoch"] = _epoch, ["seq"] = _seq };
        }

        await socket.SendTextAsync(Encoding.UTF8.GetBytes(frame.ToJsonString()), cancellationToken);
        if (waitForOk)
        {
            await _ok.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        }
    }

    /// <summary>One server frame, on the read loop.</summary>
    private void OnFrame(ReadOnlySpan<byte> frame)
    {
        var (type, t, n) = Scan(frame);
        if (type == "event")
        {
            _onEvent(Clock.NowMicros() - t, n);
            KeepPosition(frame);
        }
        else if (type == "ok")
        {
            _ok.TrySetResult();
        }
    }

    private void KeepPosition(ReadOnlySpan<byte> frame)
    {
        var seq = (ulong)PayloadScan.Number(frame, "\"seq\":"u8);
        if (seq == 0)
        {
            return;
        }

        _seq = seq;
        if (_epoch is null)
        {
            var at = frame.IndexOf("\"epoch\":\""u8);
            if (at >= 0)
            {
                var value = frame[(at + 9)..];
                _epoch = Encoding.UTF8.GetString(value[..value.IndexOf((byte)'"')]);
            }
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
