using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Realtime.Bench.Targets;

/// <summary>
/// Peer: ASP.NET Core SignalR with the Redis backplane, as <c>bench/peers/peers.sh start signalr</c>
/// starts it (servers 127.0.0.1:8280 and :8281, hub <c>/hub</c>; redis-server 127.0.0.1:6480).
/// Subscribers speak the JSON hub protocol over a raw WebSocket (no negotiate, as the SignalR
/// clients' <c>skipNegotiation</c> does) and invoke <c>Subscribe(channel)</c>; events are published
/// by invoking <c>Publish(channel, payload)</c> on one dedicated connection to server-0 and
/// awaiting its completion.
/// </summary>
internal sealed class SignalRTarget : IBenchTarget
{
    public static readonly Uri[] Servers = [new("ws://127.0.0.1:8280/hub"), new("ws://127.0.0.1:8281/hub")];

    private readonly PeerRun _run;
    private readonly Lazy<Task<SignalRConnection>> _publisher;

    public SignalRTarget(string runDirectory)
    {
        _run = new PeerRun(runDirectory, "signalr");
        _publisher = new(() => SignalRConnection.ConnectAsync(Servers[0], null, null, CancellationToken.None));
    }

    public string Name => "signalr";

    public int Instances => Servers.Length;

    public IReadOnlyList<(string Name, int Pid)> Processes() => _run.Processes();

    public async Task<IBenchSubscriber> SubscribeAsync(int index, int instance, IPAddress source, string channel, Action<long, long> onEvent, CancellationToken cancellationToken) =>
        await PeerSubscriber.ConnectAsync(
            async ct =>
            {
                var connection = await SignalRConnection.ConnectAsync(Servers[instance], source, onEvent, ct);
                return (connection, connection.Abort, connection.InvokeAsync("Subscribe", $"[{JsonSerializer.Serialize(channel)}]", ct));
            },
            cancellationToken);

    public async Task PublishAsync(string channel, long n, CancellationToken cancellationToken)
    {
        var publisher = await _publisher.Value;
        await publisher.InvokeAsync("Publish", $"[{JsonSerializer.Serialize(channel)},{{\"t\":{Clock.NowMicros()},\"n\":{n}}}]", cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_publisher.IsValueCreated && _publisher.Value.IsCompletedSuccessfully)
        {
            await (await _publisher.Value).DisposeAsync();
        }
    }
}

/// <summary>
/// One SignalR hub connection speaking the JSON hub protocol: records end with 0x1E; the handshake
/// <c>{"protocol":"json","version":1}</c> is answered by <c>{}</c> (or <c>{"error":..}</c>);
/// invocations are <c>{"type":1,..}</c>, completions <c>{"type":3,"invocationId":..}</c>, pings
/// <c>{"type":6}</c>, close <c>{"type":7,..}</c>. The server drops a client it has not heard from
/// for 30 s (ClientTimeoutInterval), so this connection pings every 15 s, as SignalR clients do.
/// </summary>
internal sealed class SignalRConnection : IAsyncDisposable
{
    private const byte RecordSeparator = 0x1E;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan KeepAliveInterval = TimeSpan.FromSeconds(15);
    private static readonly byte[] Handshake = "{\"protocol\":\"json\",\"version\":1}\u001e"u8.ToArray();
    private static readonly byte[] Ping = "{\"type\":6}\u001e"u8.ToArray();

    private readonly ConcurrentDictionary<long, TaskCompletionSource> _pending = new();
    private readonly TaskCompletionSource _handshake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action<long, long>? _onEvent;
    private PeerWebSocket? _socket;
    private bool _handshaken;
    private long _nextId;

    private SignalRConnection(Action<long, long>? onEvent) => _onEvent = onEvent;

    /// <summary>Connects to <paramref name="hub"/> and completes the handshake; invocations of <c>event</c> go to <paramref name="onEvent"/>.</summary>
    public static async Task<SignalRConnection> ConnectAsync(Uri hub, IPAddress? source, Action<long, long>? onEvent, CancellationToken cancellationToken)
    {
        var connection = new SignalRConnection(onEvent);
        connection._socket = await PeerWebSocket.ConnectAsync(hub, source, RecordSeparator, connection.OnRecord, cancellationToken);
        _ = connection._socket.Completion.ContinueWith(_ => connection.FailAll("the connection closed"), TaskScheduler.Default);
        try
        {
            await connection._socket.SendAsync(Handshake, cancellationToken);
            await connection._handshake.Task.WaitAsync(Timeout, cancellationToken);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        connection._socket.StartKeepAlive(KeepAliveInterval, Ping);
        return connection;
    }

    /// <summary>Invokes hub method <paramref name="target"/> with an invocation id and waits for its completion.</summary>
    public async Task InvokeAsync(string target, string argumentsJson, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref _nextId);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = done;
        try
        {
            var frame = $"{{\"type\":1,\"invocationId\":\"{id.ToString(CultureInfo.InvariantCulture)}\",\"target\":\"{target}\",\"arguments\":{argumentsJson}}}\u001e";
            await _socket!.SendAsync(Encoding.UTF8.GetBytes(frame), cancellationToken);
            await done.Task.WaitAsync(Timeout, cancellationToken);
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    public void Abort() => _socket?.Abort();

    public ValueTask DisposeAsync() => _socket?.DisposeAsync() ?? ValueTask.CompletedTask;

    /// <summary>One record, on the read loop. A byte scan, not a JSON parse: the server writes <c>type</c> first.</summary>
    private void OnRecord(PeerWebSocket socket, ReadOnlySpan<byte> record)
    {
        if (!_handshaken)
        {
            _handshaken = true;
            if (record.IndexOf("\"error\""u8) >= 0)
            {
                _handshake.TrySetException(new WebSocketException($"SignalR handshake refused: {Encoding.UTF8.GetString(record)}"));
            }
            else
            {
                _handshake.TrySetResult();
            }

            return;
        }

        if (record.StartsWith("{\"type\":1,"u8))
        {
            // {"type":1,"target":"event","arguments":["<channel>",{"t":..,"n":..}]}
            var arguments = record.IndexOf("\"arguments\":"u8);
            if (_onEvent is { } onEvent && arguments >= 0)
            {
                var payload = record[arguments..];
                onEvent(Clock.NowMicros() - PayloadScan.Number(payload, "\"t\":"u8), PayloadScan.Number(payload, "\"n\":"u8));
            }
        }
        else if (record.StartsWith("{\"type\":3,"u8))
        {
            var id = PayloadScan.Number(record, "\"invocationId\":\""u8);
            if (_pending.TryGetValue(id, out var done))
            {
                if (record.IndexOf("\"error\":"u8) >= 0)
                {
                    done.TrySetException(new WebSocketException($"SignalR invocation failed: {Encoding.UTF8.GetString(record)}"));
                }
                else
                {
                    done.TrySetResult();
                }
            }
        }
        else if (record.StartsWith("{\"type\":7"u8))
        {
            FailAll($"the server closed the connection: {Encoding.UTF8.GetString(record)}");
        }
    }

    private void FailAll(string reason)
    {
        var error = new WebSocketException(reason);
        _handshake.TrySetException(error);
        foreach (var pending in _pending.Values)
        {
            pending.TrySetException(error);
        }
    }
}

/// <summary>Receives one complete message (or one record, when records are separated) on a <see cref="PeerWebSocket"/>'s read loop.</summary>
internal delegate void PeerMessageHandler(PeerWebSocket socket, ReadOnlySpan<byte> message);

/// <summary>
/// A WebSocket to a peer's server (shared by the SignalR and Socket.IO targets), bound to a source
/// address like <see cref="RealtimeSubscriber"/> and read the same way (<see cref="LoopbackWebSocket"/>):
/// it hands over whole messages or, with a record separator, whole records, however they are
/// split over or packed into messages.
/// </summary>
internal sealed class PeerWebSocket : IAsyncDisposable
{
    private const int MaxRecordBytes = 1 << 20;
    private readonly LoopbackWebSocket _socket;
    private readonly byte? _separator;
    private readonly PeerMessageHandler _onMessage;
    private readonly CancellationTokenSource _stop = new();
    private byte[] _partial = [];
    private int _partialCount;
    private Task _keepAlive = Task.CompletedTask;

    private PeerWebSocket(LoopbackWebSocket socket, byte? separator, PeerMessageHandler onMessage)
    {
        (_socket, _separator, _onMessage) = (socket, separator, onMessage);
    }

    /// <summary>Completes when the read loop ends (closed, aborted or failed).</summary>
    public Task Completion => _socket.Completion;

    public static async Task<PeerWebSocket> ConnectAsync(Uri uri, IPAddress? source, byte? recordSeparator, PeerMessageHandler onMessage, CancellationToken cancellationToken)
    {
        var socket = await LoopbackWebSocket.ConnectAsync(uri, source, [], cancellationToken);
        var peer = new PeerWebSocket(socket, recordSeparator, onMessage);
        socket.Start(peer.OnMessage);
        return peer;
    }

    /// <summary>Sends one text message; concurrent callers take turns.</summary>
    public Task SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken) => _socket.SendTextAsync(message, cancellationToken);

    /// <summary>Sends without waiting (from the read loop: pongs, the namespace connect); a failure shows as the socket closing.</summary>
    public void Post(ReadOnlyMemory<byte> message) => _socket.PostText(message);

    /// <summary>Sends <paramref name="message"/> every <paramref name="interval"/> until disposed.</summary>
    public void StartKeepAlive(TimeSpan interval, ReadOnlyMemory<byte> message) => _keepAlive = KeepAliveAsync(interval, message);

    /// <summary>Drops the connection without a close handshake.</summary>
    public void Abort()
    {
        _stop.Cancel();
        _socket.Abort();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _socket.DisposeAsync();
        await _keepAlive.ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }

    private async Task KeepAliveAsync(TimeSpan interval, ReadOnlyMemory<byte> message)
    {
        try
        {
            while (true)
            {
                await Task.Delay(interval, _stop.Token);
                await SendAsync(message, _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private void OnMessage(ReadOnlySpan<byte> message)
    {
        if (_separator is not { } separator)
        {
            _onMessage(this, message);
            return;
        }

        if (_partialCount > 0)
        {
            // A record began in an earlier message: join them, then split as usual.
            Append(message);
            var rest = Split(_partial.AsSpan(0, _partialCount), separator);
            rest.CopyTo(_partial);
            _partialCount = rest.Length;
            return;
        }

        Append(Split(message, separator));
    }

    /// <summary>Hands over every whole record in <paramref name="data"/>; returns what follows the last separator.</summary>
    private ReadOnlySpan<byte> Split(ReadOnlySpan<byte> data, byte separator)
    {
        int length;
        while ((length = data.IndexOf(separator)) >= 0)
        {
            _onMessage(this, data[..length]);
            data = data[(length + 1)..];
        }

        return data;
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return;
        }

        if (_partialCount + bytes.Length > MaxRecordBytes)
        {
            throw new WebSocketException($"a record over {MaxRecordBytes} bytes");
        }

        if (_partialCount + bytes.Length > _partial.Length)
        {
            Array.Resize(ref _partial, Math.Max(4096, _partialCount + bytes.Length));
        }

        bytes.CopyTo(_partial.AsSpan(_partialCount));
        _partialCount += bytes.Length;
    }
}

/// <summary>
/// Where a peer started by <c>bench/peers/peers.sh start &lt;peer&gt; &lt;run-dir&gt;</c> keeps its
/// pids: <c>&lt;run-dir&gt;/&lt;peer&gt;.pids</c>, lines <c>&lt;name&gt; &lt;pid&gt;</c> (server-0,
/// server-1, redis-server).
/// </summary>
internal sealed class PeerRun
{
    private readonly string _pidsFile;

    public PeerRun(string runDirectory, string peer)
    {
        _pidsFile = Path.Combine(runDirectory, $"{peer}.pids");
        if (!File.Exists(_pidsFile))
        {
            throw new InvalidOperationException($"{_pidsFile} does not exist: start the peer first (bash bench/peers/peers.sh start {peer} {runDirectory}) or pass its --peer-run-dir");
        }
    }

    /// <summary>The peer's processes, read again on every call.</summary>
    public IReadOnlyList<(string Name, int Pid)> Processes()
    {
        var found = new List<(string, int)>();
        try
        {
            foreach (var line in File.ReadLines(_pidsFile))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length == 2 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                {
                    found.Add((parts[0], pid));
                }
            }
        }
        catch (IOException)
        {
        }

        return found;
    }
}
