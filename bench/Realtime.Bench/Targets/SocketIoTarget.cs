using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Realtime.Bench.Targets;

/// <summary>
/// Peer: Socket.IO 4 with <c>@socket.io/redis-adapter</c>, as <c>bench/peers/peers.sh start
/// socketio</c> starts it (servers 127.0.0.1:8380 and :8381; redis-server 127.0.0.1:6481).
/// Subscribers speak Engine.IO v4 / Socket.IO v5 over a raw WebSocket (straight to the websocket
/// transport, no polling first) and emit <c>subscribe(channel)</c> with an ack; events are
/// published by emitting <c>publish(channel, payload)</c> with an ack on one dedicated connection
/// to server-0.
/// </summary>
internal sealed class SocketIoTarget : IBenchTarget
{
    public static readonly Uri[] Servers =
    [
        new("ws://127.0.0.1:8380/socket.io/?EIO=4&transport=websocket"),
        new("ws://127.0.0.1:8381/socket.io/?EIO=4&transport=websocket"),
    ];

    private readonly PeerRun _run;
    private readonly Lazy<Task<SocketIoConnection>> _publisher;

    public SocketIoTarget(string runDirectory)
    {
        _run = new PeerRun(runDirectory, "socketio");
        _publisher = new(() => SocketIoConnection.ConnectAsync(Servers[0], null, null, CancellationToken.None));
    }

    public string Name => "socketio";

    public int Instances => Servers.Length;

    public IReadOnlyList<(string Name, int Pid)> Processes() => _run.Processes();

    public async Task<IBenchSubscriber> SubscribeAsync(int index, int instance, IPAddress source, string channel, Action<long, long> onEvent, CancellationToken cancellationToken) =>
        await PeerSubscriber.ConnectAsync(
            async ct =>
            {
                var connection = await SocketIoConnection.ConnectAsync(Servers[instance], source, onEvent, ct);
                return (connection, connection.Abort, connection.EmitWithAckAsync($"\"subscribe\",{JsonSerializer.Serialize(channel)}", ct));
            },
            cancellationToken);

    public async Task PublishAsync(string channel, long n, CancellationToken cancellationToken)
    {
        var publisher = await _publisher.Value;
        await publisher.EmitWithAckAsync($"\"publish\",{JsonSerializer.Serialize(channel)},{{\"t\":{Clock.NowMicros()},\"n\":{n}}}", cancellationToken);
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
/// One Socket.IO connection to the main namespace over the Engine.IO v4 websocket transport: one
/// packet per WebSocket message. The server opens with <c>0{"sid":..,"pingInterval":25000,..}</c>;
/// the client connects the namespace with <c>40</c> and gets <c>40{"sid":..}</c> (or
/// <c>44{..}</c>); the server pings with <c>2</c> and expects <c>3</c>; events are
/// <c>42["event",..]</c>, emits with an ack <c>42&lt;id&gt;[..]</c>, acks <c>43&lt;id&gt;[..]</c>.
/// </summary>
internal sealed class SocketIoConnection : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private static readonly byte[] ConnectNamespace = "40"u8.ToArray();
    private static readonly byte[] Pong = "3"u8.ToArray();

    private readonly ConcurrentDictionary<long, TaskCompletionSource> _pending = new();
    private readonly TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action<long, long>? _onEvent;
    private PeerWebSocket? _socket;
    private long _nextAckId;

    private SocketIoConnection(Action<long, long>? onEvent) => _onEvent = onEvent;

    /// <summary>Connects to <paramref name="server"/> and joins the main namespace; <c>event</c> packets go to <paramref name="onEvent"/>.</summary>
    public static async Task<SocketIoConnection> ConnectAsync(Uri server, IPAddress? source, Action<long, long>? onEvent, CancellationToken cancellationToken)
    {
        var connection = new SocketIoConnection(onEvent);
        connection._socket = await PeerWebSocket.ConnectAsync(server, source, null, connection.OnPacket, cancellationToken);
        _ = connection._socket.Completion.ContinueWith(_ => connection.FailAll("the connection closed"), TaskScheduler.Default);
        try
        {
            await connection._connected.Task.WaitAsync(Timeout, cancellationToken);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        return connection;
    }

    /// <summary>Emits an event (<paramref name="argumentsJson"/>: the JSON array's items, event name first) with an ack and waits for the ack.</summary>
    public async Task EmitWithAckAsync(string argumentsJson, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref _nextAckId);
        var acked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = acked;
        try
        {
            await _socket!.SendAsync(Encoding.UTF8.GetBytes($"42{id.ToString(CultureInfo.InvariantCulture)}[{argumentsJson}]"), cancellationToken);
            await acked.Task.WaitAsync(Timeout, cancellationToken);
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    public void Abort() => _socket?.Abort();

    public ValueTask DisposeAsync() => _socket?.DisposeAsync() ?? ValueTask.CompletedTask;

    /// <summary>One Engine.IO packet, on the read loop; a byte scan, not a JSON parse.</summary>
    private void OnPacket(PeerWebSocket socket, ReadOnlySpan<byte> packet)
    {
        if (packet.IsEmpty)
        {
            return;
        }

        switch (packet[0])
        {
            case (byte)'0': // Engine.IO open: connect to the main namespace.
                socket.Post(ConnectNamespace);
                return;
            case (byte)'2': // Engine.IO ping.
                socket.Post(Pong);
                return;
            case (byte)'1': // Engine.IO close.
                FailAll("the server closed the connection");
                return;
            case (byte)'4' when packet.Length > 1: // Engine.IO message: a Socket.IO packet.
                break;
            default:
                return;
        }

        switch (packet[1])
        {
            case (byte)'2' when _onEvent is { } onEvent: // 42["event","<channel>",{"t":..,"n":..}]
                onEvent(Clock.NowMicros() - PayloadScan.Number(packet, "\"t\":"u8), PayloadScan.Number(packet, "\"n\":"u8));
                break;
            case (byte)'3': // 43<id>[..]
                if (_pending.TryGetValue(PayloadScan.Number(packet, "43"u8), out var acked))
                {
                    acked.TrySetResult();
                }

                break;
            case (byte)'0': // 40{"sid":..}
                _connected.TrySetResult();
                break;
            case (byte)'4': // 44{"message":..}
                _connected.TrySetException(new WebSocketException($"Socket.IO refused the connection: {Encoding.UTF8.GetString(packet)}"));
                break;
            case (byte)'1': // 41: disconnected from the namespace.
                FailAll("the server disconnected the namespace");
                break;
        }
    }

    private void FailAll(string reason)
    {
        var error = new WebSocketException(reason);
        _connected.TrySetException(error);
        foreach (var pending in _pending.Values)
        {
            pending.TrySetException(error);
        }
    }
}
