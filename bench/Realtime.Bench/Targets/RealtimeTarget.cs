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
/// WebSocket protocol; events are published through the gRPC Publisher API: over one
/// <c>PublishStream</c> call, as a service that publishes continuously would (the peers' publishers
/// likewise hold one connection), or, constructed with <c>unaryPublish</c>, one <c>Publish</c> call per event.
/// </summary>
internal sealed class RealtimeTarget : IBenchTarget
{
    public static readonly Uri[] Gateways = [new("ws://127.0.0.1:8080/ws"), new("ws://127.0.0.1:8081/ws")];

    private readonly Func<string, string> _tokenFor;
    private readonly GrpcChannel _grpc = GrpcChannel.ForAddress("http://127.0.0.1:9080");
    private readonly Publisher.PublisherClient _publisher;
    private readonly Grpc.Core.Metadata _auth;
    private readonly Lazy<StreamPublisher>? _stream;

    public RealtimeTarget(Func<string, string> tokenFor, bool unaryPublish = false)
    {
        _tokenFor = tokenFor;
        _publisher = new Publisher.PublisherClient(_grpc);
        _auth = new Grpc.Core.Metadata { { "authorization", $"Bearer {tokenFor("bench-publisher")}" } };
        _stream = unaryPublish ? null : new Lazy<StreamPublisher>(() => new StreamPublisher(_publisher, _auth));
    }

    public string Name => "realtime";

    public IReadOnlyList<(string Name, int Pid)> Processes() => ProcessSample.FindStack();

    public int Instances => Gateways.Length;

    public async Task<IBenchSubscriber> SubscribeAsync(int index, int instance, IPAddress source, string channel, Action<long, long> onEvent, CancellationToken cancellationToken) =>
        // One subject per subscriber: the per-user connection cap applies to benchmarks too.
        await RealtimeSubscriber.ConnectAsync(Gateways[instance], _tokenFor($"bench-{index}"), source, channel, onEvent, cancellationToken);

    public Task PublishAsync(string channel, long n, CancellationToken cancellationToken)
    {
        var request = new PublishRequest { Channel = channel, EventType = "bench", Payload = ByteString.CopyFromUtf8($"{{\"t\":{Clock.NowMicros()},\"n\":{n}}}") };
        return _stream is null
            ? _publisher.PublishAsync(request, _auth, cancellationToken: cancellationToken).ResponseAsync
            : _stream.Value.PublishAsync(request, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_stream is { IsValueCreated: true })
        {
            await _stream.Value.DisposeAsync();
        }

        _grpc.Dispose();
    }
}

/// <summary>
/// One <c>PublishStream</c> call shared by concurrent publishes: requests are written one at a
/// time, and since the gateway answers in request order, each answer completes the oldest waiting publish.
/// </summary>
internal sealed class StreamPublisher : IAsyncDisposable
{
    private readonly Grpc.Core.AsyncDuplexStreamingCall<PublishRequest, PublishStreamResponse> _call;
    private readonly System.Collections.Concurrent.ConcurrentQueue<TaskCompletionSource> _waiting = new();
    private readonly SemaphoreSlim _writing = new(1, 1);
    private readonly Task _reading;

    public StreamPublisher(Publisher.PublisherClient client, Grpc.Core.Metadata auth)
    {
        _call = client.PublishStream(auth);
        _reading = ReadAsync();
    }

    public async Task PublishAsync(PublishRequest request, CancellationToken cancellationToken)
    {
        var answer = new TaskCompletionSource();
        await _writing.WaitAsync(cancellationToken);
        try
        {
            _waiting.Enqueue(answer);
            await _call.RequestStream.WriteAsync(request, cancellationToken);
        }
        finally
        {
            _writing.Release();
        }

        await answer.Task;
    }

    public async ValueTask DisposeAsync()
    {
        await _writing.WaitAsync();
        try
        {
            await _call.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or InvalidOperationException)
        {
            // The call has already ended: its reader has failed what was waiting.
        }

        await _reading.WaitAsync(TimeSpan.FromSeconds(30));
        _call.Dispose();
        _writing.Dispose();
    }

    private async Task ReadAsync()
    {
        Exception ended = new InvalidOperationException("The publish stream ended.");
        try
        {
            while (await _call.ResponseStream.MoveNext(CancellationToken.None))
            {
                var response = _call.ResponseStream.Current;
                if (!_waiting.TryDequeue(out var answer))
                {
                    throw new InvalidOperationException("An answer to no publish.");
                }

                if (response.OutcomeCase == PublishStreamResponse.OutcomeOneofCase.Result)
                {
                    answer.TrySetResult();
                }
                else
                {
                    answer.TrySetException(new InvalidOperationException($"publish refused: {(Grpc.Core.StatusCode)response.Error.Code} {response.Error.Message}"));
                }
            }
        }
        catch (Exception e)
        {
            ended = e;
        }

        while (_waiting.TryDequeue(out var answer))
        {
            answer.TrySetException(ended);
        }
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
